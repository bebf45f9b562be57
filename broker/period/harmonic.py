"""Exact weighted least-squares fits of per-band Fourier models at a few frequencies, and Baluev's FAP.

Used where an engine's full grid is not needed: refining coarse peaks on the native grid (1 term: the
generalised Lomb-Scargle, identical to astropy's "standard" power with a floating mean) and refitting
candidate periods with 2-6 harmonics for the alias-aware choice. Cost is O(n_freq · N · terms²), so it is
only ever called on tens to hundreds of frequencies.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

_MAX_ELEMENTS = 2_000_000  # design-matrix entries per chunk: bounded memory for long light curves


def band_chi2(
    t: np.ndarray, y: np.ndarray, w: np.ndarray, freqs: np.ndarray, terms: int
) -> tuple[np.ndarray, float]:
    """(chi2 (m,) of offset + `terms` harmonics at each frequency, chi2_0 of the offset alone), one band.

    t, y: (N,) days, mags; w: (N,) weights 1/sigma^2; freqs: (m,) cycles/day. A tiny ridge keeps
    degenerate frequencies (every point at one phase) finite instead of failing."""
    y0 = y - np.average(y, weights=w)
    sw = np.sqrt(w)
    yw = y0 * sw
    chi2_0 = float(yw @ yw)
    p = 2 * terms + 1
    out = np.empty(len(freqs))
    step = max(1, _MAX_ELEMENTS // (len(t) * p))
    for start in range(0, len(freqs), step):
        f = freqs[start : start + step]
        # harmonics by complex powers of exp(i·2πft): one exp per point instead of 2·terms trig calls
        base = np.exp(2j * np.pi * f[:, None] * t[None, :])  # (m, N)
        waves = np.cumprod(np.broadcast_to(base[:, :, None], (*base.shape, terms)), axis=2)
        x = np.empty((len(f), len(t), p))
        x[:, :, 0] = sw
        x[:, :, 1 : terms + 1] = waves.real * sw[None, :, None]
        x[:, :, terms + 1 :] = waves.imag * sw[None, :, None]
        a = np.matmul(x.transpose(0, 2, 1), x)  # (m, p, p), batched BLAS
        b = np.matmul(x.transpose(0, 2, 1), yw)  # (m, p)
        ridge = 1e-12 * np.trace(a, axis1=1, axis2=2)[:, None, None] * np.eye(p)
        beta = np.linalg.solve(a + ridge, b[:, :, None])[:, :, 0]
        out[start : start + step] = chi2_0 - np.einsum("mp,mp->m", b, beta)
    return np.maximum(out, 0.0), chi2_0


def multiband_chi2(
    bands: list[tuple[np.ndarray, np.ndarray, np.ndarray]], freqs: np.ndarray, terms: int
) -> tuple[np.ndarray, float]:
    """Sum over bands of `band_chi2` (per-band offsets and amplitudes, shared frequency): ((m,), chi2_0)."""
    total, total_0 = np.zeros(len(freqs)), 0.0
    for t, y, w in bands:
        chi2, chi2_0 = band_chi2(t, y, w, freqs, terms)
        total += chi2
        total_0 += chi2_0
    return total, total_0


def power(bands: list[tuple[np.ndarray, np.ndarray, np.ndarray]], freqs: np.ndarray) -> np.ndarray:
    """(m,) multiband Lomb-Scargle power, standard normalisation: 1 - chi2(f) / chi2_0 (one term, floating
    mean per band). Closed form of the generalised Lomb-Scargle (Zechmeister & Kürster 2009): a few
    matrix-vector products per band instead of a least-squares solve per frequency."""
    reduction, chi2_0 = np.zeros(len(freqs)), 0.0
    for t, y, weights in bands:
        total = weights.sum()
        w = weights / total
        y0 = y - w @ y
        wy = w * y0
        chi2_0 += total * float(wy @ y0)
        step = max(1, _MAX_ELEMENTS // max(len(t), 1))
        for start in range(0, len(freqs), step):
            z = np.exp(2j * np.pi * freqs[start : start + step, None] * t[None, :])  # (m, N)
            z2 = z * z
            c, s = z.real @ w, z.imag @ w
            yc, ys = z.real @ wy, z.imag @ wy
            cc = 0.5 * (1 + z2.real @ w) - c * c
            ss = 0.5 * (1 - z2.real @ w) - s * s
            cs = 0.5 * (z2.imag @ w) - c * s
            with np.errstate(invalid="ignore", divide="ignore"):
                r = (ss * yc * yc + cc * ys * ys - 2 * cs * yc * ys) / (cc * ss - cs * cs)
            reduction[start : start + step] += total * np.where(np.isfinite(r), r, 0.0)
    return reduction / chi2_0


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


def weighted_time_variance(t: np.ndarray, dy: np.ndarray) -> float:
    """Weighted variance of the observation times [d^2], weights 1/dy^2 (Baluev's effective baseline)."""
    w = dy**-2.0
    centred = t - np.average(t, weights=w)
    return float(np.average(centred**2, weights=w))
