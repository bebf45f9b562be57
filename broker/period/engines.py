"""Periodogram engines: one signature, registered by name, "auto" resolved in one place.

An engine maps a batch of single-band `Series` to one (grid.n,) float64 power array per series, standard
normalisation (0..1, floating mean) — the same numbers whichever engine runs (tested against astropy).
Engines are the operator's choice (`[period] engine`); the science (grid, bands, peak choice) is not theirs.
Threads over a batch are added by the caller (`run_engine`), so engines stay single-threaded functions.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from broker.period.grid import Series

Engine = Callable[[Sequence[Series]], list[np.ndarray]]


def _nifty_ls(batch: Sequence[Series]) -> list[np.ndarray]:
    """nifty-ls (FINUFFT, CPU), float64: float32 NUFFT loses the peak. nifty-ls 1.1 batches only series
    sharing t, so heterogeneous light curves go one call each (it releases the GIL: threads help)."""
    from nifty_ls.finufft import lombscargle

    return [lombscargle(s.t, s.y, s.grid.f0, s.grid.df, s.grid.n, dy=s.dy, nthreads=1) for s in batch]


PLAN_SIZES_PER_OCTAVE = 8  # reused plans: grid sizes rounded up to 2^(k/8), at most 9% more frequencies
# reused plans' transform, whose powers only nominate peaks: float32 at FINUFFT tolerance 1e-5 (nifty-ls:
# float64, 1e-9). Against float64 at 1e-6 (the previous setting), v2's period_days and fold_period_days
# stayed the same (1e-4 relative) for 12156 / 12163 objects: CRTS 5754 / 5757, the period bench's EROS-1
# 2912 / 2912, OGLE F 582 / 582, sparse 2908 / 2912 (near-tied peaks; recovery 0.6497 -> 0.6501)
# period_summary() pooled speedup vs plain nifty-ls: 2.35-2.48x (float64) -> 2.72-2.85x (float32)
COARSE_DTYPE = np.complex64
COARSE_EPS = 1e-5
# free plans kept: at most this many modes in all (~80 bytes per mode: ~40 MB), least recently used
# sizes dropped first; at most _PLANS_PER_SIZE pairs per size (one per thread of `[period] threads`)
_PLAN_MODES_KEPT = 1 << 19
_PLANS_PER_SIZE = 4
_free_plans: OrderedDict[int, list] = OrderedDict()
_plans_lock = threading.Lock()


def nifty_ls_reused_plans(batch: Sequence[Series]) -> list[np.ndarray]:
    """nifty-ls's FINUFFT periodogram with FINUFFT plans kept across curves and batches, in COARSE_DTYPE.

    Creating a plan costs about as much as running it at N ~ 300, and nifty-ls makes two per call. Here
    each grid size is rounded up to a few sizes per octave, so heterogeneous curves share plans. Only the
    transform runs in COARSE_DTYPE (float32: ~15% less CPU per search on CRTS): the weights and phases are
    made by nifty-ls's float64 helper and reduced mod 2π before the cast, and the power is assembled in
    float64. Powers agree with `_nifty_ls` to ~1e-2 (float32 points carry ~1e-7 rad, times up to ~1e5
    modes), which is enough to nominate the same peaks: the coarse pass only nominates, its peaks are
    refined exactly on the native grid. Native-grid searches keep nifty-ls's own float64 call.
    Returns float64 (grid.n,) powers like every engine."""
    import finufft
    from nifty_ls import cpu_helpers

    points = np.finfo(COARSE_DTYPE).dtype  # float32 for complex64
    out = []
    for s in batch:
        n_modes = 2 ** (math.ceil(math.log2(s.grid.n) * PLAN_SIZES_PER_OCTAVE) / PLAN_SIZES_PER_OCTAVE)
        n_modes = max(math.ceil(n_modes), s.grid.n)
        plans = _acquire_plans(n_modes, finufft)
        pair, solo = plans
        n = len(s.t)
        y, dy = s.y[None, :], s.dy[None, :]
        yw_w = np.empty((2, n), dtype=np.complex128)
        t1, t2 = np.empty_like(s.t), np.empty_like(s.t)
        w2, norm = np.empty((1, n), dtype=np.complex128), np.empty(1)
        cpu_helpers.process_finufft_inputs(
            t1, t2, yw_w[:1], yw_w[1:], w2, norm, s.t, y, dy, s.grid.f0, s.grid.df, n_modes,
            True, True, False, 1,
        )  # fmt: skip
        # type-1 modes are integers: points only matter mod 2π; reduced in float64 before any float32 cast
        # (nifty-ls's t1 = 2π·df·t reaches ~1e4 rad at MJD ~ 5e4, where float32 would lose ~1e-3 rad)
        t1, t2 = np.remainder(t1 + np.pi, 2 * np.pi) - np.pi, np.remainder(t2 + np.pi, 2 * np.pi) - np.pi
        pair.setpts(t1.astype(points, copy=False))
        f1_fw = pair.execute(yw_w.astype(COARSE_DTYPE, copy=False)).astype(np.complex128, copy=False)
        solo.setpts(t2.astype(points, copy=False))
        f2 = solo.execute(w2.astype(COARSE_DTYPE, copy=False)).astype(np.complex128, copy=False)
        power = np.empty((1, n_modes))  # assembled in float64: float32 cancels (C2 - C^2 ...) at low power
        cpu_helpers.process_finufft_outputs(
            power, f1_fw[:1], f1_fw[1:], f2, norm, cpu_helpers.NormKind.Standard, True, 1
        )
        out.append(power[0, : s.grid.n])
        _release_plans(n_modes, plans)
    return out


def _acquire_plans(n_modes: int, finufft):
    """(plan for 2 transforms, plan for 1) of `n_modes` modes with nifty-ls's settings: a kept pair when
    one is free, else new ones. Plans are not thread-safe: each caller holds its pair until released."""
    with _plans_lock:
        free = _free_plans.get(n_modes)
        if free:
            return free.pop()
    settings = {"eps": COARSE_EPS, "upsampfac": 1.25, "fftw": 64, "nthreads": 1, "dtype": COARSE_DTYPE}
    return tuple(finufft.Plan(1, (n_modes,), n_trans=k, **settings) for k in (2, 1))


def _release_plans(n_modes: int, plans) -> None:
    """Keep `plans` for the next curve of this size within _PLAN_MODES_KEPT (least recently used out)."""
    with _plans_lock:
        free = _free_plans.setdefault(n_modes, [])
        if len(free) < _PLANS_PER_SIZE:
            free.append(plans)
        _free_plans.move_to_end(n_modes)
        while len(_free_plans) > 1 and sum(n * len(f) for n, f in _free_plans.items()) > _PLAN_MODES_KEPT:
            _free_plans.popitem(last=False)


def _cuda(batch: Sequence[Series]) -> list[np.ndarray]:
    """nifty-ls's cufinufft backend on the GPU, float64."""
    from nifty_ls.cufinufft import lombscargle

    return [lombscargle(t=s.t, y=s.y, dy=s.dy, fmin=s.grid.f0, df=s.grid.df, Nf=s.grid.n) for s in batch]


def _astropy_fast(batch: Sequence[Series]) -> list[np.ndarray]:
    """astropy method="fast" with Press & Rybicki extirpolation ("fasper")."""
    from astropy.timeseries import LombScargle

    return [
        LombScargle(s.t, s.y, s.dy).power(
            s.grid.frequencies(),
            method="fast",
            method_kwds={"algorithm": "fasper"},
            assume_regular_frequency=True,
        )
        for s in batch
    ]


def _astropy(batch: Sequence[Series]) -> list[np.ndarray]:
    """astropy's default method ("auto": fast/low-rank approximation on large regular grids, else exact)."""
    from astropy.timeseries import LombScargle

    return [
        LombScargle(s.t, s.y, s.dy).power(s.grid.frequencies(), assume_regular_frequency=True) for s in batch
    ]


ENGINES: dict[str, Engine] = {
    "nifty-ls": _nifty_ls,
    "astropy-fast": _astropy_fast,
    "astropy": _astropy,
    "cuda": _cuda,
}
ENGINE_NAMES = ["auto", *ENGINES]


def _missing_nifty_ls() -> str | None:
    try:
        import nifty_ls.finufft  # noqa: F401
    except ImportError as exc:
        return f"nifty-ls is not installed ({exc})"
    return None


def _missing_cuda() -> str | None:
    try:
        import nifty_ls.cufinufft  # noqa: F401  (its import checks cupy, cufinufft and a CUDA device)
    except Exception as exc:  # ImportError, or a CUDA runtime error raised by cupy on a broken driver
        return f"needs nifty-ls's cufinufft backend and a CUDA device (pip install nifty-ls[cuda]): {exc}"
    return None


_UNAVAILABLE: dict[str, Callable[[], str | None]] = {"nifty-ls": _missing_nifty_ls, "cuda": _missing_cuda}


@functools.cache
def unavailable_reason(name: str) -> str | None:
    """Why engine `name` cannot run here, or None when it can (checked once per process)."""
    check = _UNAVAILABLE.get(name)
    return check() if check else None


def available_engines() -> list[str]:
    return [name for name in ENGINES if unavailable_reason(name) is None]


def resolve_engine(name: str) -> str:
    """The one place "auto" is decided (cuda, else nifty-ls, else astropy-fast) and names are checked.

    Unknown names raise ValueError listing the valid ones; a known engine that cannot run here raises
    too, saying why (so `engine = "cuda"` on a machine without CUDA fails at start, clearly)."""
    from broker.period.settings import PeriodConfigError

    if name == "auto":
        return next(n for n in ("cuda", "nifty-ls", "astropy-fast") if unavailable_reason(n) is None)
    if name not in ENGINES:
        raise PeriodConfigError(f"unknown period-search engine {name!r}; valid: {ENGINE_NAMES}")
    reason = unavailable_reason(name)
    if reason is not None:
        raise PeriodConfigError(f"period-search engine {name!r} is not available here: {reason}")
    return name


def run_engine(
    name: str, batch: Sequence[Series], threads: int = 1, reuse_plans: bool = False
) -> list[np.ndarray]:
    """Powers of `batch` from engine `name` (resolved), split over `threads` threads in contiguous chunks.

    reuse_plans: nifty-ls with plans kept across curves (`nifty_ls_reused_plans`), for passes whose powers
    only nominate peaks (float32 transform: powers to ~1e-2, the same peaks; about half the cost)."""
    resolved = resolve_engine(name)
    engine = nifty_ls_reused_plans if reuse_plans and resolved == "nifty-ls" else ENGINES[resolved]
    if threads <= 1 or len(batch) <= 1 or resolved == "cuda":
        return engine(batch)
    size = -(-len(batch) // threads)
    chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        return [power for part in pool.map(engine, chunks) for power in part]
