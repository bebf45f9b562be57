"""Training of the PELS-VAE on folded windows, its latent regression, and its reconstruction metrics.

Input: `Windows` from the plugin's own period search and folding (built by `broker.offline.dataset`), turned
into `PhaseSequences`: phases recovered from Δφ and aligned so the fundamental Fourier harmonic is brightest
at phase 0 (a latent of 4 then describes shape, not an arbitrary epoch), magnitudes and errors standardised
per window as `models.windows` has them, and the physical parameters of `models.pelsvae.PARAMS` from the
window's aux. The paper's augmentation, applied per batch: a random subset of each window (or, for short
windows, the window plus points resampled within their errors) of one random length in [min_len, seq_len];
magnitudes resampled within their errors; a small random phase shift (the alignment's uncertainty).
Adam with a cosine learning-rate schedule, fixed seeds, early stopping on the validation loss.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from models.latent_regression import LatentRegression, fit_latent_regression
from models.pelsvae import DEFAULT_HYPERPARAMETERS, PARAMS, PelsVAE, PelsVaeBundle, vae_loss
from models.windows import Windows

log = logging.getLogger(__name__)

CATALOGUE_ROWS_PER_CLASS = 300
PAPER_CHANGES = [
    "data: CRTS (V) and EROS-1 (B+R centred) windows folded with the plugin's own Lomb-Scargle period, "
    "not OGLE-III I band with catalogue periods; no Gaia parameters (no Teff, radius, absolute magnitude): "
    "the physical parameters are log10 period, log10 rms amplitude and mean magnitude",
    "magnitudes standardised per window (not min-max scaled with a sigmoid output)",
    "phases aligned to the fundamental harmonic's brightest phase; the random phase shift is kept as a "
    "small jitter (±phase_jitter) instead of a uniform shift over the whole cycle",
    "reconstruction term: Gaussian χ²/2 with the photometric errors (floored), summed over the points; the "
    "paper's released code used a plain MSE and divided the KL term by 1e4",
    "encoder and decoder blocks use centred circular padding (phase is periodic) and the encoder mean-pools "
    "over steps; the decoder gets sin/cos phase features",
    "sequences of 32-100 points per batch (paper: 150-600) and depth 3, to train in ~10 CPU minutes",
    "latent regression inputs include the one-hot class; the chosen regressor's validation residual "
    "scatter can be added to the predicted latents at generation",
]


@dataclass
class PhaseSequences:
    """Aligned folded sequences, zero-padded to a common length L.

    phase (n, L) cycles, sorted, in [0, 1); mag (n, L) and err (n, L) standardised per window; lengths
    (n,); params (n, P) raw PARAMS; noise (n,) median magerr [mag]; labels (n,); object_ids (n,);
    fourier_rms (n,) rms residual of the 3-harmonic fit used for alignment [mag].
    """

    phase: np.ndarray
    mag: np.ndarray
    err: np.ndarray
    lengths: np.ndarray
    params: np.ndarray
    noise: np.ndarray
    labels: np.ndarray
    object_ids: np.ndarray
    fourier_rms: np.ndarray

    def __len__(self) -> int:
        return len(self.phase)

    def subset(self, index) -> PhaseSequences:
        return PhaseSequences(**{k: v[index] for k, v in self.__dict__.items()})


def fourier_design(phase: np.ndarray, n_harmonics: int) -> np.ndarray:
    """(..., 1 + 2H) columns [1, cos 2πkφ, sin 2πkφ] for k = 1..H."""
    angle = 2 * np.pi * phase[..., None] * np.arange(1, n_harmonics + 1)
    return np.concatenate([np.ones((*phase.shape, 1)), np.cos(angle), np.sin(angle)], axis=-1)


def fit_fourier(phase, mag, err, mask, n_harmonics: int = 3) -> np.ndarray:
    """(n, 1 + 2H) weighted least-squares Fourier coefficients of every row (masked points weigh 0)."""
    design = fourier_design(phase, n_harmonics)
    weight = np.where(mask, 1.0 / np.maximum(err, 1e-3) ** 2, 0.0)
    normal = np.einsum("nki,nk,nkj->nij", design, weight, design) + 1e-6 * np.eye(design.shape[-1])
    rhs = np.einsum("nki,nk,nk->ni", design, weight, mag)
    return np.linalg.solve(normal, rhs[..., None])[..., 0]


def sequences_from_windows(windows: Windows, align: bool = True, n_harmonics: int = 3) -> PhaseSequences:
    """Phases, standardised magnitudes and parameters of every window (see the module docstring)."""
    if windows.labels is None:
        raise ValueError("PELS-VAE training windows need labels")
    x, lengths = windows.x.astype(np.float64), windows.lengths.astype(np.int64)
    mask = np.arange(x.shape[1])[None, :] < lengths[:, None]
    phase = np.where(mask, np.cumsum(x[:, :, 0], axis=1) - x[:, :1, 0], 0.0)
    mag, err = x[:, :, 1], x[:, :, 2]
    coef = fit_fourier(phase, mag, err, mask, n_harmonics)
    std = windows.aux[:, 1].astype(np.float64)
    residual = np.where(mask, mag - np.einsum("nki,ni->nk", fourier_design(phase, n_harmonics), coef), 0.0)
    fourier_rms = np.sqrt((residual**2).sum(1) / lengths) * std
    if align:  # fundamental a cos + b sin is faintest at atan2(b, a) / 2π; put its brightest at 0
        faintest = np.arctan2(coef[:, 1 + n_harmonics], coef[:, 1]) / (2 * np.pi)
        phase = np.mod(phase - faintest[:, None] - 0.5, 1.0)
    order = np.argsort(np.where(mask, phase, np.inf), axis=1, kind="stable")
    phase, mag, err = (np.where(mask, np.take_along_axis(a, order, 1), 0.0) for a in (phase, mag, err))
    noise = np.array([np.median(e[:k]) for e, k in zip(err, lengths, strict=True)]) * std
    params = np.column_stack([windows.aux[:, 2], np.log10(np.maximum(std, 1e-3)), windows.aux[:, 0]])
    return PhaseSequences(
        phase=phase.astype(np.float32),
        mag=mag.astype(np.float32),
        err=err.astype(np.float32),
        lengths=lengths,
        params=params.astype(np.float64),
        noise=noise,
        labels=np.asarray(windows.labels, object),
        object_ids=np.asarray(windows.object_ids, object),
        fourier_rms=fourier_rms,
    )


@dataclass
class PelsVaeTrainConfig:
    """Optimisation settings. beta, the cosine schedule and Adam follow the paper; sizes fit a CPU.

    seq_len / min_len: points per training sequence (one random length per batch). resample_probability:
    share of sequences whose magnitudes are redrawn within their errors. phase_jitter: half-width of the
    uniform phase shift [cycles]. error_floor: added in quadrature to σ in the χ² (standardised units).
    max_seconds: wall-clock budget; training stops after the epoch that passes it.
    """

    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    min_lr: float = 1e-5
    beta: float = 0.75
    error_floor: float = 0.1
    seq_len: int = 100
    min_len: int = 32
    resample_probability: float = 0.5
    phase_jitter: float = 0.05
    patience: int = 4
    grad_clip: float = 5.0
    seed: int = 0
    max_seconds: float | None = 600.0
    progress: bool = True


@dataclass
class PelsVaeTrainResult:
    model: PelsVAE
    class_names: list[str]
    hyperparameters: dict
    config: PelsVaeTrainConfig
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = math.inf
    seconds: float = 0.0


def batch_tensors(
    seqs: PhaseSequences, index: np.ndarray, length: int, rng: np.random.Generator, config, augment: bool
) -> tuple[torch.Tensor, ...]:
    """(phase, mag, err) (b, length) float32, sorted by phase, plus (onehot-ready) params (b, P)."""
    b = len(index)
    phase, mag, err = (np.empty((b, length)) for _ in range(3))
    for row, i in enumerate(index):
        k = int(seqs.lengths[i])
        if k >= length:
            pick = np.sort(rng.choice(k, length, replace=False))
        else:  # the window and extra points drawn from it, resampled within their errors
            pick = np.concatenate([np.arange(k), rng.integers(k, size=length - k)])
        p, m, e = seqs.phase[i, pick], seqs.mag[i, pick].astype(np.float64), seqs.err[i, pick]
        extra = np.arange(length) >= k
        if augment and rng.random() < config.resample_probability:
            m = m + e * rng.standard_normal(length)
        else:
            m = np.where(extra, m + e * rng.standard_normal(length), m)
        if augment and config.phase_jitter > 0:
            p = np.mod(p + rng.uniform(-config.phase_jitter, config.phase_jitter), 1.0)
        order = np.argsort(p, kind="stable")
        phase[row], mag[row], err[row] = p[order], m[order], e[order]
    return tuple(torch.as_tensor(a, dtype=torch.float32) for a in (phase, mag, err))


def onehot(labels: np.ndarray, class_names: list[str]) -> torch.Tensor:
    lookup = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(map(str, labels)) - set(lookup))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the class names {class_names}")
    out = torch.zeros(len(labels), len(class_names))
    out[torch.arange(len(labels)), torch.as_tensor([lookup[str(x)] for x in labels])] = 1.0
    return out


def _evaluate_loss(model, seqs, class_names, config) -> float:
    """Mean validation loss on fixed subsets of seq_len points (same every epoch)."""
    rng = np.random.default_rng(config.seed + 1)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(seqs), 256):
            index = np.arange(start, min(start + 256, len(seqs)))
            phase, mag, err = batch_tensors(seqs, index, config.seq_len, rng, config, augment=False)
            params = torch.as_tensor(seqs.params[index], dtype=torch.float32)
            out = model(phase, mag, err, onehot(seqs.labels[index], class_names), params)
            loss, _, _ = vae_loss(*out[:1], mag, err, *out[1:], config.beta, config.error_floor)
            total, count = total + loss.item() * len(index), count + len(index)
    return total / max(count, 1)


def train_pelsvae(
    train: PhaseSequences,
    val: PhaseSequences,
    class_names: list[str],
    hyperparameters: dict | None = None,
    config: PelsVaeTrainConfig | None = None,
) -> PelsVaeTrainResult:
    """Train on `train`, pick the epoch with the lowest validation loss, restore its weights."""
    config = config or PelsVaeTrainConfig()
    hp = {**DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = PelsVAE(len(class_names), len(PARAMS), **hp)
    model.set_param_scaling(train.params.mean(0), train.params.std(0))
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=config.epochs * steps_per_epoch, eta_min=config.min_lr
    )
    result = PelsVaeTrainResult(model, list(class_names), hp, config)
    best_state, stale, start = None, 0, time.monotonic()
    for epoch in range(config.epochs):
        model.train()
        order = rng.permutation(len(train))
        sums = np.zeros(3)
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"pelsvae epoch {epoch + 1}",
            leave=False,
            disable=not config.progress,
        )
        for step in bar:
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            length = int(rng.integers(config.min_len, config.seq_len + 1))
            phase, mag, err = batch_tensors(train, index, length, rng, config, augment=True)
            params = torch.as_tensor(train.params[index], dtype=torch.float32)
            mag_hat, mu, logvar = model(phase, mag, err, onehot(train.labels[index], class_names), params)
            loss, reconstruction, kl = vae_loss(
                mag_hat, mag, err, mu, logvar, config.beta, config.error_floor
            )
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimiser.step()
            scheduler.step()
            sums += (loss.item() / length, reconstruction.item() / length, kl.item())
            bar.set_postfix(loss=f"{sums[0] / (step + 1):.3f}")
        val_loss = _evaluate_loss(model, val, class_names, config) / config.seq_len
        entry = {
            "epoch": epoch + 1,
            "train_loss_per_point": round(float(sums[0]) / steps_per_epoch, 5),
            "train_reconstruction_per_point": round(float(sums[1]) / steps_per_epoch, 5),
            "train_kl": round(float(sums[2]) / steps_per_epoch, 4),
            "val_loss_per_point": round(val_loss, 5),
            "lr": optimiser.param_groups[0]["lr"],
            "seconds": round(time.monotonic() - start, 1),
        }
        result.history.append(entry)
        log.info("pelsvae %s", entry)
        if config.progress:
            tqdm.write(f"pelsvae {entry}")
        if val_loss < result.best_val_loss:
            result.best_val_loss, result.best_epoch, stale = val_loss, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if stale >= config.patience:
            break
        if config.max_seconds is not None and time.monotonic() - start > config.max_seconds:
            log.info("pelsvae: time budget of %.0f s spent after epoch %d", config.max_seconds, epoch + 1)
            break
    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.monotonic() - start
    return result


# ----------------------------------------------------------------------------- latents and the bundle


def encode_means(
    model: PelsVAE, seqs: PhaseSequences, class_names, seq_len: int, seed: int = 0
) -> np.ndarray:
    """(n, latent) posterior means, each from a fixed random subset of seq_len points."""
    rng = np.random.default_rng(seed)
    config = PelsVaeTrainConfig(seq_len=seq_len)
    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(seqs), 512):
            index = np.arange(start, min(start + 512, len(seqs)))
            phase, mag, err = batch_tensors(seqs, index, seq_len, rng, config, augment=False)
            params = torch.as_tensor(seqs.params[index], dtype=torch.float32)
            mu, _ = model.encode(phase, mag, err, onehot(seqs.labels[index], class_names), params)
            out.append(mu.numpy())
    return np.concatenate(out) if out else np.zeros((0, model.latent))


def regression_inputs(model: PelsVAE, seqs: PhaseSequences, class_names) -> np.ndarray:
    """(n, K + P) one-hot class + standardised parameters (as `PelsVaeBundle.regression_features`)."""
    scaled = (seqs.params - model.param_mean.numpy()) / model.param_std.numpy()
    return np.hstack([onehot(seqs.labels, list(class_names)).numpy(), scaled])


def fit_regression(
    model, train: PhaseSequences, val: PhaseSequences, class_names, config
) -> LatentRegression:
    z_train = encode_means(model, train, class_names, config.seq_len, config.seed)
    z_val = encode_means(model, val, class_names, config.seq_len, config.seed)
    return fit_latent_regression(
        regression_inputs(model, train, class_names),
        z_train,
        regression_inputs(model, val, class_names),
        z_val,
        seed=config.seed,
    )


def class_catalogue(seqs: PhaseSequences, seed: int = 0) -> dict[str, np.ndarray]:
    """class → (≤ CATALOGUE_ROWS_PER_CLASS, P + 1) per-object medians of [PARAMS..., noise] (training set)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    table = pd.DataFrame(np.column_stack([seqs.params, seqs.noise]))
    table["object_id"], table["label"] = seqs.object_ids.astype(str), seqs.labels.astype(str)
    medians = table.groupby(["label", "object_id"], sort=True).median()
    rows_by_class = {label: group.to_numpy() for label, group in medians.groupby(level="label")}
    catalogue = {}
    for label, rows in sorted(rows_by_class.items()):
        rows = np.asarray(rows)
        if len(rows) > CATALOGUE_ROWS_PER_CLASS:
            rows = rows[np.sort(rng.choice(len(rows), CATALOGUE_ROWS_PER_CLASS, replace=False))]
        catalogue[label] = rows
    return catalogue


def reconstruction_metrics(bundle: PelsVaeBundle, seqs: PhaseSequences, seq_len: int, seed: int = 0) -> dict:
    """Per class and overall: how well the VAE reconstructs held-out windows at all their real points.

    Each window is encoded from seq_len of its points (posterior mean), decoded at every real point and
    compared: rmse_mag (median over windows, [mag]), chi2_per_point (mean of (m − m̂)²/σ²), and two
    references, noise_mag (median σ) and fourier3_rms_mag (a 3-harmonic least-squares fit of the window).
    """
    names = bundle.class_names
    z = encode_means(bundle.model, seqs, names, seq_len, seed)
    rmse_mag, chi2 = np.zeros(len(seqs)), np.zeros(len(seqs))
    for label in sorted(set(map(str, seqs.labels))):
        index = np.flatnonzero(seqs.labels == label)
        for length in np.unique(seqs.lengths[index]):
            rows = index[seqs.lengths[index] == length]
            recon = bundle.decode(z[rows], label, seqs.params[rows], seqs.phase[rows, :length])
            resid = seqs.mag[rows, :length] - recon
            std = 10.0 ** seqs.params[rows, 1]
            rmse_mag[rows] = np.sqrt(np.mean(resid**2, axis=1)) * std
            chi2[rows] = np.mean((resid / np.maximum(seqs.err[rows, :length], 1e-3)) ** 2, axis=1)
    per_class = {}
    for label in sorted(set(map(str, seqs.labels))):
        m = seqs.labels == label
        per_class[label] = {
            "n_windows": int(m.sum()),
            "rmse_mag": float(np.median(rmse_mag[m])),
            "chi2_per_point": float(np.median(chi2[m])),
            "noise_mag": float(np.median(seqs.noise[m])),
            "fourier3_rms_mag": float(np.median(seqs.fourier_rms[m])),
        }
    return {
        "n_windows": len(seqs),
        "rmse_mag": float(np.median(rmse_mag)) if len(seqs) else math.nan,
        "chi2_per_point": float(np.median(chi2)) if len(seqs) else math.nan,
        "per_class": per_class,
    }


def make_bundle(
    result: PelsVaeTrainResult,
    train: PhaseSequences,
    val: PhaseSequences,
    name: str,
    version: str,
    metadata: dict | None = None,
) -> PelsVaeBundle:
    """Fit the latent regression, gather the catalogue, and assemble the bundle (no metrics yet)."""
    regression = fit_regression(result.model, train, val, result.class_names, result.config)
    config = {k: v for k, v in asdict(result.config).items() if k != "progress"}
    meta = {
        "arch": "pelsvae-tcn",
        "hyperparameters": result.hyperparameters,
        "training": {
            **config,
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "best_val_loss_per_point": result.best_val_loss,
            "seconds": round(result.seconds, 1),
            "history": result.history,
        },
        "changes_from_paper": PAPER_CHANGES,
        **(metadata or {}),
    }
    return PelsVaeBundle(
        name,
        version,
        result.class_names,
        result.model,
        regression,
        class_catalogue(train, result.config.seed),
        meta,
    )
