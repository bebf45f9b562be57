"""PELS-VAE: a conditional VAE that generates periodic light curves at any phases (Martínez-Palomera, Bloom &
Abrahams 2020).

Encoder and decoder are temporal convolutional networks over phase-sorted sequences (tensors (batch,
channels, length)). The encoder reads (phase, mag, σ) per step and, with the condition (one-hot class +
standardised physical parameters), gives q(z|x) = N(μ, diag σ²). The decoder is fed, at every requested
phase, [z, condition, phase features] and returns the standardised magnitude there, so a light curve can be
generated at any cadence. Loss: β-VAE with a Gaussian reconstruction term whose variance is the
photometric error (χ²/2, errors floored) and β·KL.

Physical parameters, in `PARAMS` order: log10 period [days] (the plugin's own Lomb-Scargle period), log10
rms amplitude [mag] (the window's magnitude standard deviation, noise included, as in `Windows.aux`) and the
mean magnitude [mag]. Magnitudes are standardised per sequence (as `models.windows` does) and phases
aligned so the fundamental Fourier harmonic peaks in brightness at phase 0 (see `models.pelsvae_train`).

A `PelsVaeBundle` holds the network, the latent regression (`models.latent_regression`) and a catalogue of
training parameters per class, and `generate`s magnitudes. On disk it follows `models.bundle`: a folder with
weights.pt (tensors only), metadata.json and regression.npz (arrays, no pickle).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from models.bundle import METADATA_FILE, WEIGHTS_FILE, BundleFormatError
from models.jsonio import json_default
from models.latent_regression import LatentRegression

PARAMS = ("log10_period", "log10_amplitude", "mean_mag")
KIND = "generator"
FORMAT_VERSION = 1
REGRESSION_FILE = "regression.npz"
DEFAULT_HYPERPARAMETERS = {
    "latent": 4,
    "hidden": 48,
    "kernel": 7,
    "depth": 3,
    "n_harmonics": 3,
    "dropout": 0.0,
}
# Decoding defaults (a bundle uses its training min_len / seq_len): requested phases are cut into interleaved
# chunks of at most MAX_DECODE_POINTS; sets shorter than MIN_DECODE_POINTS get uniform filler phases.
MAX_DECODE_POINTS = 100
MIN_DECODE_POINTS = 32
BUNDLES_DIR = Path(__file__).resolve().parent / "bundles"
DEFAULT_GENERATOR_BUNDLE = BUNDLES_DIR / "pelsvae-crts-eros"


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one thread inside the block (or decorated function), then restore the setting.

    Generation decodes one light curve (tens of points) at a time: on a busy 2-core machine torch's
    intra-op threads made that 20x slower than one thread (measured: 0.38 s vs 0.02 s per curve).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def phase_features(phase: torch.Tensor, n_harmonics: int) -> torch.Tensor:
    """(batch, length) phases in cycles → (batch, 2·n_harmonics, length) [sin 2πkφ, cos 2πkφ]."""
    k = torch.arange(1, n_harmonics + 1, device=phase.device, dtype=phase.dtype)
    angle = 2 * math.pi * phase.unsqueeze(1) * k.view(1, -1, 1)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)


class CircularBlock(nn.Module):
    """Residual block of two weight-normalised dilated convolutions with *centred* circular padding.

    (batch, c_in, length) → (batch, c_out, length). Hand-written rather than the iTCN's block, which pads
    on the left only (its invariance needs that); a decoder of a periodic curve wants context on both
    sides. Padding is an index gather so sequences shorter than the padding wrap as often as needed.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = (kernel - 1) * dilation // 2
        self.conv1 = weight_norm(nn.Conv1d(c_in, c_out, kernel, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(c_out, c_out, kernel, dilation=dilation))
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def _wrap(self, x: torch.Tensor) -> torch.Tensor:
        index = torch.arange(-self.pad, x.shape[-1] + self.pad, device=x.device) % x.shape[-1]
        return x.index_select(-1, index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(torch.relu(self.conv1(self._wrap(x))))
        h = self.dropout(torch.relu(self.conv2(self._wrap(h))))
        return torch.relu(h + self.skip(x))


def tcn(c_in: int, hidden: int, kernel: int, depth: int, dropout: float) -> nn.Sequential:
    """`depth` circular blocks with dilations 1, 2, 4, ...; kernel must be odd (centred padding)."""
    if kernel % 2 == 0:
        raise ValueError(f"kernel must be odd for centred padding, got {kernel}")
    return nn.Sequential(
        *(CircularBlock(c_in if i == 0 else hidden, hidden, kernel, 2**i, dropout) for i in range(depth))
    )


class PelsVAE(nn.Module):
    """Conditional TCN-VAE.

    forward(phase (b, L), mag (b, L), err (b, L), onehot (b, K), params (b, P) raw) →
    (mag_hat (b, L), mu (b, latent), logvar (b, latent)). mag and err are standardised per sequence;
    params are raw `PARAMS` values, standardised inside with buffers fitted on the training set.
    """

    def __init__(
        self,
        n_classes: int,
        n_params: int = len(PARAMS),
        latent: int = 4,
        hidden: int = 48,
        kernel: int = 7,
        depth: int = 3,
        n_harmonics: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_classes, self.n_params, self.latent, self.n_harmonics = (
            n_classes,
            n_params,
            latent,
            n_harmonics,
        )
        n_condition = n_classes + n_params
        self.encoder_tcn = tcn(2 * n_harmonics + 2, hidden, kernel, depth, dropout)
        self.encoder_head = nn.Sequential(nn.Linear(hidden + n_condition, hidden), nn.ReLU())
        self.to_mu = nn.Linear(hidden, latent)
        self.to_logvar = nn.Linear(hidden, latent)
        self.decoder_tcn = tcn(latent + n_condition + 2 * n_harmonics, hidden, kernel, depth, dropout)
        self.decoder_head = nn.Conv1d(hidden, 1, 1)
        self.register_buffer("param_mean", torch.zeros(n_params))
        self.register_buffer("param_std", torch.ones(n_params))

    def set_param_scaling(self, mean, std) -> None:
        self.param_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.param_std.copy_(torch.clamp(torch.as_tensor(std, dtype=torch.float32), min=1e-6))

    def condition(self, onehot: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return torch.cat([onehot, (params - self.param_mean) / self.param_std], dim=1)

    def encode(self, phase, mag, err, onehot, params) -> tuple[torch.Tensor, torch.Tensor]:
        steps = torch.cat([phase_features(phase, self.n_harmonics), mag.unsqueeze(1), err.unsqueeze(1)], 1)
        pooled = self.encoder_tcn(steps).mean(dim=-1)
        h = self.encoder_head(torch.cat([pooled, self.condition(onehot, params)], dim=1))
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z, onehot, params, phase) -> torch.Tensor:
        """(b, latent), (b, K), (b, P), (b, L) phases → (b, L) standardised magnitudes."""
        code = torch.cat([z, self.condition(onehot, params)], dim=1)
        steps = torch.cat(
            [code.unsqueeze(-1).expand(-1, -1, phase.shape[1]), phase_features(phase, self.n_harmonics)], 1
        )
        return self.decoder_head(self.decoder_tcn(steps)).squeeze(1)

    def forward(self, phase, mag, err, onehot, params):
        mu, logvar = self.encode(phase, mag, err, onehot, params)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z, onehot, params, phase), mu, logvar


def vae_loss(
    mag_hat: torch.Tensor,
    mag: torch.Tensor,
    err: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 0.75,
    error_floor: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, KL), each the mean over the batch of a per-sequence sum.

    reconstruction = Σ (m − m̂)² / (2 (σ² + floor²)): the Gaussian likelihood with the photometric errors,
    in standardised units; the floor (0.1 of the rms by default) keeps the tiniest errors from dominating.
    """
    variance = err**2 + error_floor**2
    reconstruction = (0.5 * (mag - mag_hat) ** 2 / variance).sum(dim=1).mean()
    kl = (-0.5 * (1 + logvar - mu**2 - logvar.exp())).sum(dim=1).mean()
    return reconstruction + beta * kl, reconstruction, kl


# --------------------------------------------------------------------------------------------- bundle


@dataclass
class Generated:
    """Light curves from `PelsVaeBundle.generate`, one row per curve.

    mag, magerr: (n, m) [mag]; clean: (n, m) noise-free magnitudes; phases: (n, m) in cycles;
    params: (n, P) raw `PARAMS`; noise: (n,) magnitude error used [mag]; peak_to_peak: (n,) of the
    noise-free curve on a fine phase grid [mag].
    """

    mag: np.ndarray
    magerr: np.ndarray
    clean: np.ndarray
    phases: np.ndarray
    params: np.ndarray
    noise: np.ndarray
    peak_to_peak: np.ndarray

    @property
    def period_days(self) -> np.ndarray:
        return 10.0 ** self.params[:, 0]


class PelsVaeBundle:
    """A trained PELS-VAE, its latent regression and per-class training catalogue.

    catalogue: class → (r, P + 1) rows of training objects' [PARAMS..., noise magerr], the source of
    "draw the parameters from the training catalogue of that class".
    """

    def __init__(
        self,
        name: str,
        version: str,
        class_names: list[str],
        model: PelsVAE,
        regression: LatentRegression,
        catalogue: dict[str, np.ndarray],
        metadata: dict,
    ) -> None:
        self.name, self.version, self.class_names = name, version, list(class_names)
        self.model = model.eval()
        self.regression = regression
        self.catalogue = {k: np.asarray(v, np.float64) for k, v in catalogue.items()}
        self.metadata = dict(metadata)
        training = self.metadata.get("training", {})  # decode at the densities the decoder was trained on
        self.decode_points = (
            int(training.get("min_len", MIN_DECODE_POINTS)),
            int(training.get("seq_len", MAX_DECODE_POINTS)),
        )

    def __repr__(self) -> str:
        return f"PelsVaeBundle({self.name!r}, version={self.version!r}, classes={self.class_names})"

    def class_index(self, class_name: str) -> int:
        if class_name not in self.class_names:
            raise ValueError(f"class {class_name!r} is not one of this generator's {self.class_names}")
        return self.class_names.index(class_name)

    def regression_features(self, class_name: str, params: np.ndarray) -> np.ndarray:
        """(n, K + P) one-hot class + standardised parameters: the latent regression's input."""
        params = np.atleast_2d(np.asarray(params, np.float64))
        onehot = np.zeros((len(params), len(self.class_names)))
        onehot[:, self.class_index(class_name)] = 1.0
        mean, std = self.model.param_mean.numpy(), self.model.param_std.numpy()
        return np.hstack([onehot, (params - mean) / std])

    def draw_params(self, class_name: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(n, P) parameters and (n,) noise levels [mag] drawn (with replacement) from the class catalogue."""
        rows = self.catalogue.get(class_name)
        if rows is None or not len(rows):
            raise ValueError(f"no training catalogue for class {class_name!r}; have {sorted(self.catalogue)}")
        picked = rows[rng.integers(len(rows), size=n)]
        return picked[:, : len(PARAMS)], picked[:, len(PARAMS)]

    def typical_noise(self, class_name: str) -> float:
        rows = self.catalogue.get(class_name)
        return float(np.median(rows[:, len(PARAMS)])) if rows is not None and len(rows) else 0.05

    @torch.inference_mode()
    def decode(self, z: np.ndarray, class_name: str, params: np.ndarray, phases: np.ndarray) -> np.ndarray:
        """Standardised magnitudes (n, m) of latents z (n, latent) at phases (n, m), any m ≥ 1.

        Each row's phases are sorted and cut into interleaved chunks of at most the training sequence length
        (each spans the whole cycle, at a density the decoder saw in training); sets shorter than the
        shortest training sequence get uniform filler phases.
        """
        phases = np.mod(np.atleast_2d(np.asarray(phases, np.float64)), 1.0)
        n, m = phases.shape
        fewest, most = self.decode_points
        n_chunks = max(1, math.ceil(m / most))
        per_chunk = max(math.ceil(m / n_chunks), fewest)
        order = np.argsort(phases, axis=1, kind="stable")
        filled = np.empty((n, n_chunks * per_chunk))
        filled[:, :m] = np.take_along_axis(phases, order, axis=1)
        filled[:, m:] = (np.arange(n_chunks * per_chunk - m) + 0.5) / max(n_chunks * per_chunk - m, 1)
        # chunk c takes every n_chunks-th phase starting at c; phases inside a chunk are sorted again
        chunks = filled.reshape(n, per_chunk, n_chunks).transpose(0, 2, 1).reshape(n * n_chunks, per_chunk)
        inner = np.argsort(chunks, axis=1, kind="stable")
        chunks = np.take_along_axis(chunks, inner, axis=1)
        onehot = torch.zeros(n * n_chunks, len(self.class_names))
        onehot[:, self.class_index(class_name)] = 1.0
        out = (
            self.model.decode(
                torch.as_tensor(np.repeat(z, n_chunks, axis=0), dtype=torch.float32),
                onehot,
                torch.as_tensor(np.repeat(np.atleast_2d(params), n_chunks, axis=0), dtype=torch.float32),
                torch.as_tensor(chunks, dtype=torch.float32),
            )
            .double()
            .numpy()
        )
        unsorted = np.empty_like(out)
        np.put_along_axis(unsorted, inner, out, axis=1)
        flat = unsorted.reshape(n, n_chunks, per_chunk).transpose(0, 2, 1).reshape(n, -1)[:, :m]
        result = np.empty((n, m))
        np.put_along_axis(result, order, flat, axis=1)
        return result

    @single_threaded()
    def generate(
        self,
        class_name: str,
        params: np.ndarray | dict | None = None,
        phases: np.ndarray | None = None,
        times: np.ndarray | None = None,
        n: int = 1,
        noise: float | str = "auto",
        seed: int | np.random.Generator | None = 0,
        latent_scatter: float = 1.0,
    ) -> Generated:
        """Generate `n` light curves of `class_name`.

        params: (P,) or (n, P) raw `PARAMS`, a dict with "period" [days] (or "log10_period"), "amplitude"
        [mag rms] (or "log10_amplitude") and "mean_mag", or None to draw (parameters and noise) from the
        training catalogue of the class. phases: (m,) or (n, m) in cycles; or times: (m,) or (n, m) [days],
        folded with each curve's period and a random epoch. noise: magnitude error [mag], 0 for noise-free,
        or "auto" (the drawn catalogue noise, else the class median). latent_scatter: multiple of the
        regression's validation residual added to the predicted latents (diversity); 0 for none.
        """
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.class_index(class_name)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        drawn_noise = None
        if params is None:
            params, drawn_noise = self.draw_params(class_name, n, rng)
        params = np.broadcast_to(_params_array(params), (n, len(PARAMS))).astype(np.float64)
        if (phases is None) == (times is None):
            raise ValueError("give exactly one of phases or times")
        if phases is None:
            times = np.broadcast_to(np.atleast_2d(np.asarray(times, np.float64)), (n, np.shape(times)[-1]))
            epoch = rng.uniform(size=(n, 1))
            phases = (times - times[:, :1]) / (10.0 ** params[:, :1]) + epoch
        phases = np.mod(
            np.broadcast_to(np.atleast_2d(np.asarray(phases, np.float64)), (n, np.shape(phases)[-1])), 1
        )
        if noise == "auto":
            noise_level = (
                drawn_noise if drawn_noise is not None else np.full(n, self.typical_noise(class_name))
            )
        else:
            if not (isinstance(noise, int | float) and noise >= 0):
                raise ValueError(f"noise must be a magnitude error >= 0 or 'auto', got {noise!r}")
            noise_level = np.full(n, float(noise))
        z = self.regression.predict(self.regression_features(class_name, params), rng)
        z = z + latent_scatter * self.regression.residual_std * rng.standard_normal(z.shape)
        amplitude, mean_mag = 10.0 ** params[:, 1:2], params[:, 2:3]
        clean = mean_mag + amplitude * self.decode(z, class_name, params, phases)
        grid = np.broadcast_to(np.linspace(0, 1, 200, endpoint=False), (n, 200))
        template = self.decode(z, class_name, params, grid) * amplitude
        magerr = np.broadcast_to(noise_level[:, None], clean.shape).copy()
        mag = clean + magerr * rng.standard_normal(clean.shape)
        return Generated(mag, magerr, clean, phases, params, noise_level, np.ptp(template, axis=1))


def _params_array(params) -> np.ndarray:
    """Raw PARAMS from an array or a dict with period/amplitude (linear) or their log10 names."""
    if not isinstance(params, dict):
        return np.asarray(params, np.float64)
    values = []
    for name, linear in zip(PARAMS, ("period", "amplitude", None), strict=True):
        if name in params:
            values.append(np.asarray(params[name], np.float64))
        elif linear is not None and linear in params:
            value = np.asarray(params[linear], np.float64)
            if np.any(value <= 0):
                raise ValueError(f"{linear} must be > 0, got {params[linear]!r}")
            values.append(np.log10(value))
        else:
            raise ValueError(
                f"params need {name!r}{f' or {linear!r}' if linear else ''}; got {sorted(params)}"
            )
    return np.stack(np.broadcast_arrays(*values), axis=-1)


def save_pelsvae_bundle(bundle: PelsVaeBundle, path: str | Path) -> Path:
    """Write weights.pt, regression.npz and metadata.json into folder `path` (created)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in bundle.model.state_dict().items()}
    torch.save(state, path / WEIGHTS_FILE)
    regression_meta, arrays = bundle.regression.state()
    np.savez_compressed(path / REGRESSION_FILE, **arrays)
    document = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "name": bundle.name,
        "version": bundle.version,
        "class_names": bundle.class_names,
        "params": list(PARAMS),
        "param_normalisation": {
            "mean": bundle.model.param_mean.tolist(),
            "std": bundle.model.param_std.tolist(),
        },
        "regression": regression_meta,
        "catalogue": {
            "columns": [*PARAMS, "noise_mag"],
            "rows": {k: np.round(v, 5).tolist() for k, v in bundle.catalogue.items()},
        },
        "metadata": bundle.metadata,
    }
    (path / METADATA_FILE).write_text(json.dumps(document, indent=1, default=json_default) + "\n")
    return path


def load_pelsvae_bundle(path: str | Path = DEFAULT_GENERATOR_BUNDLE) -> PelsVaeBundle:
    """Read a folder written by `save_pelsvae_bundle`; raises BundleFormatError naming what is wrong."""
    path = Path(path)
    for file in (METADATA_FILE, WEIGHTS_FILE, REGRESSION_FILE):
        if not (path / file).is_file():
            raise BundleFormatError(f"generator bundle {path}: missing {file}")
    try:
        document = json.loads((path / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BundleFormatError(f"generator bundle {path}: cannot read {METADATA_FILE}: {err}") from err
    if document.get("kind") != KIND or document.get("format_version") != FORMAT_VERSION:
        raise BundleFormatError(
            f"generator bundle {path}: need kind {KIND!r} and format_version {FORMAT_VERSION}, got "
            f"{document.get('kind')!r} / {document.get('format_version')!r}"
        )
    try:
        class_names = document["class_names"]
        hp = document["metadata"]["hyperparameters"]
        model = PelsVAE(len(class_names), len(document["params"]), **hp)
        model.load_state_dict(torch.load(path / WEIGHTS_FILE, map_location="cpu", weights_only=True))
        with np.load(path / REGRESSION_FILE, allow_pickle=False) as arrays:
            regression = LatentRegression.from_state(document["regression"], dict(arrays))
        catalogue = {
            k: np.asarray(v, np.float64).reshape(-1, len(PARAMS) + 1)
            for k, v in document["catalogue"]["rows"].items()
        }
    except (KeyError, TypeError, RuntimeError, OSError, ValueError) as err:
        raise BundleFormatError(f"generator bundle {path}: {type(err).__name__}: {err}") from err
    return PelsVaeBundle(
        document.get("name", path.name),
        document.get("version", "0"),
        class_names,
        model,
        regression,
        catalogue,
        document["metadata"],
    )
