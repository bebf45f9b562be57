"""Exact weighted least-squares fits of per-band Fourier models at a few frequencies, and Baluev's FAP.

Used where an engine's full grid is not needed: refining coarse peaks on the native grid (1 term: the
generalised Lomb-Scargle, identical to astropy's "standard" power with a floating mean) and refitting
candidate periods with 2-6 harmonics for the alias-aware choice. Cost is O(n_freq · N · terms²), so it is
only ever called on tens to hundreds of frequencies.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import gammaln

if TYPE_CHECKING:
    from broker.period.grid import Prepared

_MAX_ELEMENTS = 2_000_000  # design-matrix entries per chunk: bounded memory for long light curves


Band = tuple[np.ndarray, np.ndarray, np.ndarray]  # (t [d], y [mag], w = 1/sigma^2), (N,) each


def band_chi2(
    t: np.ndarray, y: np.ndarray, w: np.ndarray, freqs: np.ndarray, terms: int
) -> tuple[np.ndarray, float]:
    """(chi2 (m,) of offset + `terms` harmonics at each frequency, chi2_0 of the offset alone), one band.

    t, y: (N,) days, mags; w: (N,) weights 1/sigma^2; freqs: (m,) cycles/day."""
    return multiband_chi2([(t, y, w)], freqs, terms)


def multiband_chi2(bands: list[Band], freqs: np.ndarray, terms: int) -> tuple[np.ndarray, float]:
    """Sum over bands of the chi2 of per-band offset + `terms` harmonics at one shared frequency.

    The normal equations are built from trigonometric sums, not a design matrix: with z = exp(2πi f t),
    every entry of X^T W X is a combination of sum(w z^j), j = 0..2·terms, and X^T W y of sum(w y z^k),
    so the cost is O(m · N · terms) plus one batched (m, bands, p, p) solve. Returns ((m,), chi2_0).
    A tiny ridge keeps degenerate frequencies (every point at one phase) finite instead of failing."""
    t, columns, chi2_0 = _stacked(bands)
    freqs = np.asarray(freqs, dtype=np.float64)
    out = np.empty(len(freqs))
    n_bands, p, n_powers = len(bands), 2 * terms + 1, 2 * terms + 1
    matrix_map, vector_map = _normal_maps(terms)
    step = max(1, _MAX_ELEMENTS // (len(t) * 2 * n_powers))
    for start in range(0, len(freqs), step):
        m = len(freqs[start : start + step])
        planes = _planes(freqs[start : start + step], t, n_powers)  # (powers, 2, m, N)
        sums = _product(planes.reshape(-1, len(t)), columns).reshape(n_powers, 2, m, 2 * n_bands)
        sw = sums[..., :n_bands].transpose(2, 3, 1, 0).reshape(m, n_bands, -1)  # [Re j, Im j] of sum(w z^j)
        sy = sums[: terms + 1, ..., n_bands:].transpose(2, 3, 1, 0).reshape(m, n_bands, -1)
        a = (sw @ matrix_map).reshape(m, n_bands, p, p)
        b = sy @ vector_map  # (m, bands, p)
        ridge = 1e-12 * np.trace(a, axis1=-2, axis2=-1)[..., None, None] * np.eye(p)
        beta = np.linalg.solve(a + ridge, b[..., None])[..., 0]
        out[start : start + step] = chi2_0 - np.einsum("mbp,mbp->m", b, beta)
    return np.maximum(out, 0.0), chi2_0


def _stacked(bands: list[Band]) -> tuple[np.ndarray, np.ndarray, float]:
    """(t (N,) from the first epoch [d], columns (N, 2·bands): w in its band, w·y0 in its band; chi2_0).

    y0 is each band's magnitudes less their weighted mean; chi2_0 = sum of w·y0² (offsets only)."""
    t = np.concatenate([b[0] for b in bands]).astype(np.float64)
    t = t - t.min() if len(t) else t  # phases relative to the first epoch: exp stays accurate
    columns = np.zeros((len(t), 2 * len(bands)))
    chi2_0, at = 0.0, 0
    for k, (_, y, w) in enumerate(bands):
        y0 = y - np.average(y, weights=w)
        columns[at : at + len(y), k] = w
        columns[at : at + len(y), len(bands) + k] = w * y0
        chi2_0 += float(w @ (y0 * y0))
        at += len(y)
    return t, columns, chi2_0


@functools.cache
def _normal_maps(terms: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear maps from trigonometric sums to the normal equations of [1, cos kθ, sin kθ (k = 1..terms)].

    matrix: (2·(2·terms + 1), p²) from [Re, Im] of sum(w z^j), j = 0..2·terms, to X^T W X (flattened);
    vector: (2·(terms + 1), p) from [Re, Im] of sum(w y z^k), k = 0..terms, to X^T W y. Uses
    cos a·cos b = (cos(a-b) + cos(a+b))/2 and the like; the constant is cos 0."""
    p, n = 2 * terms + 1, 2 * terms + 1
    kind = ["c"] * (terms + 1) + ["s"] * terms  # basis function i is cos or sin of order[i]·θ
    order = [0, *range(1, terms + 1), *range(1, terms + 1)]
    matrix = np.zeros((2 * n, p * p))
    for r in range(p):
        for c in range(p):
            k, m, col = order[r], order[c], r * p + c
            if kind[r] == kind[c]:
                sign = 1.0 if kind[r] == "c" else -1.0
                matrix[abs(k - m), col] += 0.5
                matrix[k + m, col] += 0.5 * sign
            else:  # cos kθ·sin mθ = (sin((m+k)θ) + sin((m-k)θ)) / 2
                k, m = (k, m) if kind[r] == "c" else (m, k)
                matrix[n + k + m, col] += 0.5
                matrix[n + abs(m - k), col] += 0.5 * np.sign(m - k)
    vector = np.zeros((2 * (terms + 1), p))
    for i in range(p):
        vector[order[i] + (terms + 1 if kind[i] == "s" else 0), i] = 1.0
    return matrix, vector


def power(bands: list[Band], freqs: np.ndarray) -> np.ndarray:
    """(m,) multiband Lomb-Scargle power, standard normalisation: 1 - chi2(f) / chi2_0 (one term, floating
    mean per band). Closed form of the generalised Lomb-Scargle (Zechmeister & Kürster 2009)."""
    freqs = np.asarray(freqs, dtype=np.float64)
    t, columns, chi2_0 = _stacked(bands)
    out = np.empty(len(freqs))
    step = max(1, _MAX_ELEMENTS // max(len(t), 1))
    for start in range(0, len(freqs), step):
        out[start : start + step] = _power_of(_phasors(freqs[start : start + step], t), columns)
    return out / chi2_0


def power_on_steps(bands: list[Band], starts: np.ndarray, df: float, n_steps: int) -> np.ndarray:
    """(k, n_steps) multiband power at starts[i] + df·arange(n_steps) [cycles/day]: `power` on short
    regular runs (refining peaks on the native grid), one exp per run and point, then complex products."""
    starts = np.asarray(starts, dtype=np.float64)
    t, columns, chi2_0 = _stacked(bands)
    out = np.empty((len(starts), n_steps))
    chunk = max(1, _MAX_ELEMENTS // max(len(t) * n_steps, 1))
    for at in range(0, len(starts), chunk):
        z = _run_phasors(starts[at : at + chunk], df, n_steps, t)
        out[at : at + chunk] = _power_of(z, columns).reshape(-1, n_steps)
    return out / chi2_0


def _phasors(freqs: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(m, N) complex exp(2πi f t). Frequencies in regular runs (a polish or refinement grid) take one
    cos and sin per run start and per step, the rest by complex products; others a cos and sin each."""
    runs = _regular_runs(freqs)
    return _direct_phasors(freqs, t) if runs is None else _run_phasors(*runs, t)


def _run_phasors(starts: np.ndarray, step: float, length: int, t: np.ndarray) -> np.ndarray:
    """(k·length, N) exp(2πi f t) at starts[i] + step·j, j < length: a cos and sin per start and per step,
    the grid by complex products."""
    first, shifts = _direct_phasors(starts, t), _direct_phasors(step * np.arange(length), t)
    return (first[:, None, :] * shifts[None, :, :]).reshape(-1, len(t))


def _direct_phasors(freqs: np.ndarray, t: np.ndarray) -> np.ndarray:
    phase = (2 * np.pi) * np.multiply.outer(freqs, t)
    z = np.empty(phase.shape, dtype=np.complex128)
    np.cos(phase, out=z.real)
    np.sin(phase, out=z.imag)
    return z


def _regular_runs(freqs: np.ndarray) -> tuple[np.ndarray, float, int] | None:
    """(run starts, step, run length) when freqs are equal-length runs of one regular step, else None."""
    if len(freqs) < 6:
        return None
    steps = np.diff(freqs)
    step = float(steps[0])
    if not step > 0:
        return None
    off = np.abs(steps - step) > 1e-9 * step
    length = int(np.argmax(off)) + 1 if off.any() else len(freqs)
    if length < 3 or len(freqs) % length or len(freqs) // length * 2 > length:
        return None
    grid = freqs.reshape(-1, length)
    if np.any(np.abs(np.diff(grid, axis=1) - step) > 1e-9 * step):
        return None
    return grid[:, 0], step, length


def _planes(freqs: np.ndarray, t: np.ndarray, n_powers: int) -> np.ndarray:
    """(n_powers, 2, m, N): cos jθ and sin jθ, θ = 2π f t, j = 0..n_powers-1; the harmonics by the
    angle-addition recurrence."""
    out = np.empty((n_powers, 2, len(freqs), len(t)))
    out[0, 0], out[0, 1] = 1.0, 0.0
    if n_powers > 1:
        z = _phasors(freqs, t)
        out[1, 0], out[1, 1] = z.real, z.imag
    c1, s1, scratch = out[1, 0], out[1, 1], np.empty((len(freqs), len(t)))
    for j in range(2, n_powers):
        np.multiply(out[j - 1, 0], c1, out=out[j, 0])
        out[j, 0] -= np.multiply(out[j - 1, 1], s1, out=scratch)
        np.multiply(out[j - 1, 1], c1, out=out[j, 1])
        out[j, 1] += np.multiply(out[j - 1, 0], s1, out=scratch)
    return out


def _product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for a (R, N), b (N, k) real, in row chunks small enough for single-threaded BLAS (OpenBLAS
    threads a product above 2^18 multiply-adds; on shared cores its threads spin and cost CPU time)."""
    rows = max(1, (1 << 18) // max(a.shape[1] * b.shape[1], 1))
    if len(a) <= rows:
        return a @ b
    return np.concatenate([a[i : i + rows] @ b for i in range(0, len(a), rows)])


def _power_of(z: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(m,) sum over bands of the chi2 reduction of one sinusoid + offset, z = exp(iθ) (m, N)."""
    n_bands = columns.shape[1] // 2
    planes = np.empty((4, *z.shape))  # cos θ, sin θ, cos 2θ, sin 2θ
    planes[0], planes[1] = z.real, z.imag
    np.multiply(planes[0], planes[0], out=planes[2])
    planes[2] -= planes[1] * planes[1]
    np.multiply(planes[0], planes[1], out=planes[3])
    planes[3] *= 2.0
    sums = _product(planes.reshape(-1, z.shape[1]), columns).reshape(4, len(z), 2 * n_bands)
    total = columns[:, :n_bands].sum(axis=0)  # sum(w) per band
    c, s = sums[0, :, :n_bands] / total, sums[1, :, :n_bands] / total
    yc, ys = sums[0, :, n_bands:] / total, sums[1, :, n_bands:] / total
    cc = 0.5 * (1 + sums[2, :, :n_bands] / total) - c * c
    ss = 0.5 * (1 - sums[2, :, :n_bands] / total) - s * s
    cs = 0.5 * (sums[3, :, :n_bands] / total) - c * s
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ss * yc * yc + cc * ys * ys - 2 * cs * yc * ys) / (cc * ss - cs * cs)
    return (total * np.where(np.isfinite(r), r, 0.0)).sum(axis=1)


def _gamma(n: np.ndarray) -> np.ndarray:
    return np.sqrt(2 / n) * np.exp(gammaln(n / 2) - gammaln((n - 1) / 2))


def false_alarm_probability(
    z: np.ndarray, fmax: np.ndarray, n_points: np.ndarray, t_variance: np.ndarray
) -> np.ndarray:
    """Baluev (2008) upper bound on the FAP of peak power z (standard normalisation), for many curves.

    All arguments (k,): peak power, grid's highest frequency [1/d], points, weighted variance of t [d^2]
    (weights 1/sigma^2). The same formula as astropy's `fap_baluev`, without one astropy object per curve."""
    z = np.clip(np.asarray(z, dtype=np.float64), 0.0, 1.0)
    n = np.asarray(n_points, dtype=np.float64)
    fap_single = (1 - z) ** (0.5 * (n - 3))
    w = np.asarray(fmax) * np.sqrt(4 * np.pi * np.asarray(t_variance))
    tau = _gamma(n - 1) * w * (1 - z) ** (0.5 * (n - 4)) * np.sqrt(0.5 * (n - 1) * z)
    return np.clip(-np.expm1(-tau) + fap_single * np.exp(-tau), 0.0, 1.0)


def peak_false_alarm_probability(curves: Sequence[Prepared], powers: Sequence[float]) -> np.ndarray:
    """(k,) Baluev FAP of one peak power per prepared curve: its searched grid's highest frequency, all its
    points (the probability a published period carries)."""
    if not len(curves):
        return np.empty(0)
    return false_alarm_probability(
        powers,
        [p.grid.fmax for p in curves],
        [len(p.t) for p in curves],
        [weighted_time_variance(p.t, p.dy) for p in curves],
    )


def weighted_time_variance(t: np.ndarray, dy: np.ndarray) -> float:
    """Weighted variance of the observation times [d^2], weights 1/dy^2 (Baluev's effective baseline)."""
    w = dy**-2.0
    centred = t - np.average(t, weights=w)
    return float(np.average(centred**2, weights=w))
