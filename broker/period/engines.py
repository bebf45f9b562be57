"""Periodogram engines: one signature, registered by name, "auto" resolved in one place.

An engine maps a batch of single-band `Series` to one (grid.n,) float64 power array per series, standard
normalisation (0..1, floating mean) — the same numbers whichever engine runs (tested against astropy).
Engines are the operator's choice (`[period] engine`); the science (grid, bands, peak choice) is not theirs.
Threads over a batch are added by the caller (`run_engine`), so engines stay single-threaded functions.
"""

from __future__ import annotations

import functools
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


def run_engine(name: str, batch: Sequence[Series], threads: int = 1) -> list[np.ndarray]:
    """Powers of `batch` from engine `name` (resolved), split over `threads` threads in contiguous chunks."""
    resolved = resolve_engine(name)
    engine = ENGINES[resolved]
    if threads <= 1 or len(batch) <= 1 or resolved == "cuda":
        return engine(batch)
    size = -(-len(batch) // threads)
    chunks = [batch[i : i + size] for i in range(0, len(batch), size)]
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        return [power for part in pool.map(engine, chunks) for power in part]
