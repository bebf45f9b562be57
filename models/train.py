"""Training of the window classifiers (iTCN / TCN / iResNet) and of the AE-GMM, on `Windows`.

Common to both: fixed seeds; batches of one true length at a time (a length-grouped batch sampler, so no
circular convolution or GRU ever reads zero padding); augmentation that turns a window into a young
object's window by keeping a random subset of a bucket's number of its points (re-standardised as
`broker.folding` does); class-weighted cross entropy against CRTS's imbalance; Adam; LR ×0.1 when the
validation loss plateaus (object-level cross entropy: smoother than the accuracy, so the LR does not drop on
noise); early stopping on object-level validation accuracy with the best weights kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from tqdm import tqdm

from models import aegmm, contrastive, ensemble, hierarchical, itcn
from models.bundle import (
    N_ENERGY_QUANTILES,
    Bundle,
    Prediction,
    length_groups,
    resolve_device,
    run_model,
    training_energy_summary,
)
from models.evaluate import aggregate_by_object
from models.windows import AUX, Windows

log = logging.getLogger(__name__)

MIN_STD_MAG = 1e-3  # the floor `broker.folding` puts on a window's mag std
IGNORED_AUX_STD = 1e12  # an ignored aux input's standardising std: |value - mean| / 1e12 is 0 in float32


@dataclass
class TrainConfig:
    """Optimisation settings. lr 0.005 is the iTCN paper's; the AE-GMM uses `lr_aegmm` (GRUs need less).

    crop_probability: share of windows shortened each epoch to a random smaller bucket.
    class_weighting: "inverse" (n / (K·n_c)), "sqrt" (its square root) or "none", on window counts.
    max_seconds: wall-clock budget; training stops after the epoch that exceeds it.
    supcon_weight: weight of the supervised contrastive loss on the embedding added to the classifier's
    cross entropy (`models.contrastive`; 0: cross entropy alone, the paper's), at `supcon_temperature`.
    ignored_aux: auxiliary inputs (`models.windows.AUX` names) the classifier never sees; e.g. "mean_mag",
    whose zero point differs between surveys and bands.
    superclass_weight: weight of the loss of windows labelled only with a superclass (`models.hierarchical`).
    """

    epochs: int = 40
    batch_size: int = 128
    lr: float = 0.005
    lr_aegmm: float = 0.002
    plateau_patience: int = 4
    early_stopping_patience: int = 10
    min_lr: float = 1e-5
    buckets: tuple[int, ...] = (50, 100, 150, 200)
    crop_probability: float = 0.3
    class_weighting: str = "sqrt"
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    max_seconds: float | None = None
    progress: bool = True
    supcon_weight: float = 0.0
    supcon_temperature: float = contrastive.DEFAULT_TEMPERATURE
    ignored_aux: tuple[str, ...] = ()
    superclass_weight: float = 1.0


@dataclass
class TrainResult:
    """The trained model (best validation epoch restored) and how it got there."""

    model: torch.nn.Module
    kind: str
    arch: str
    hyperparameters: dict
    class_names: list[str]
    config: TrainConfig
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float = float("nan")
    seconds: float = 0.0
    class_weights: list[float] = field(default_factory=list)
    train_energies: np.ndarray | None = None
    members: list[dict] = field(default_factory=list)  # an ensemble's members' "training" records

    def summary(self) -> dict:
        """JSON-ready description for the bundle metadata (an ensemble: each member's own record)."""
        if self.members:
            seconds = round(sum(m.get("seconds", 0.0) for m in self.members), 1)
            training = {"members": self.members, "seconds": seconds}
            return {"arch": self.arch, "hyperparameters": self.hyperparameters, "training": training}
        return {
            "arch": self.arch,
            "hyperparameters": self.hyperparameters,
            "training": {
                **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.config).items()},
                "best_epoch": self.best_epoch,
                "epochs_run": len(self.history),
                "best_val_object_accuracy": self.best_val_accuracy,
                "seconds": round(self.seconds, 1),
                "class_weights": dict(zip(self.class_names, self.class_weights, strict=True)),
                "history": self.history,
            },
        }

    def to_bundle(
        self, name: str, version: str, window: dict, period_search: dict, metadata: dict | None = None
    ) -> Bundle:
        thresholds = quantiles = None
        if self.kind == "novelty":
            thresholds, quantiles = training_energy_summary(self.train_energies)
        return Bundle(
            kind=self.kind,
            name=name,
            version=version,
            class_names=self.class_names,
            window=window,
            period_search=period_search,
            metadata={**self.summary(), **(metadata or {})},
            model=self.model,
            novelty_thresholds=thresholds,
            energy_quantiles=quantiles,
        )


def energy_quantiles_by_length(
    model: torch.nn.Module, windows: Windows, buckets: Sequence[int], seed: int = 0, max_windows: int = 4000
) -> dict[int, np.ndarray]:
    """Quantiles of an AE-GMM's energies on training windows cut to each bucket length.

    A young object's window holds fewer points (a bucket length) and scores higher energies than the full
    windows most training energies come from; novelty is ranked per length against these tables
    (`Bundle.energy_percentile(energy, lengths)`). Windows are cut as training cuts them (`subsample_window`).
    """
    rng = np.random.default_rng(seed)
    model.eval()
    tables = {}
    for length in sorted(int(b) for b in buckets):
        index = np.flatnonzero(np.asarray(windows.lengths) >= length)
        if not len(index):
            continue
        if len(index) > max_windows:
            index = np.sort(rng.choice(index, max_windows, replace=False))
        energies = []
        for start in range(0, len(index), 256):
            x, aux = batch_arrays(windows, index[start : start + 256], length, rng)
            with torch.inference_mode():
                out = model(torch.as_tensor(x), torch.as_tensor(aux))
                energies.append(model.energy(out.z).double().numpy())
        tables[length] = np.percentile(np.concatenate(energies), np.linspace(0.0, 100.0, N_ENERGY_QUANTILES))
    return tables


# ------------------------------------------------------------------------------------------ batching


def subsample_window(
    x: np.ndarray, aux: np.ndarray, length: int, keep: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A window of `keep` of its `length` real points, as `broker.folding` would build it from them.

    x (L, 3) (Δφ, m, σ) with Δφ wrapping (sums to 1); aux (3,). Returns ((keep, 3), (3,)) float32.
    """
    steps = x[:length]
    chosen = np.sort(rng.choice(length, keep, replace=False))
    phase = np.cumsum(steps[:, 0])[chosen]
    mean, std = float(aux[0]), float(aux[1])
    mag = steps[chosen, 1] * std + mean
    magerr = steps[chosen, 2] * std
    new_mean, new_std = float(mag.mean()), max(float(mag.std()), MIN_STD_MAG)
    dphase = np.diff(phase, prepend=phase[-1] - 1.0)
    out = np.stack([dphase, (mag - new_mean) / new_std, magerr / new_std], axis=1).astype(np.float32)
    return out, np.array([new_mean, new_std, aux[2]], np.float32)


def epoch_batches(
    lengths: np.ndarray, buckets: Sequence[int], crop_probability: float, batch_size: int, rng
) -> list[tuple[int, np.ndarray]]:
    """One epoch of (target length, window indices) batches, shuffled; every batch has one target length.

    A window keeps its own length, or with `crop_probability` is given a smaller bucket length at random.
    """
    lengths = np.asarray(lengths)
    target = lengths.copy()
    for i in np.flatnonzero(rng.random(len(lengths)) < crop_probability):
        smaller = [b for b in buckets if b < lengths[i]]
        if smaller:
            target[i] = rng.choice(smaller)
    batches = []
    for length in np.unique(target):
        index = rng.permutation(np.flatnonzero(target == length))
        batches += [(int(length), index[s : s + batch_size]) for s in range(0, len(index), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def batch_arrays(windows: Windows, index: np.ndarray, target: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(b, target, 3) steps and (b, 3) aux of the windows `index`, subsampled where longer than `target`."""
    x = np.empty((len(index), target, 3), np.float32)
    aux = windows.aux[index].copy()
    for row, i in enumerate(index):
        length = int(windows.lengths[i])
        if length == target:
            x[row] = windows.x[i, :target]
        else:
            x[row], aux[row] = subsample_window(windows.x[i], windows.aux[i], length, target, rng)
    return x, aux


def class_weights(labels: np.ndarray, n_classes: int, scheme: str) -> np.ndarray:
    """Cross-entropy weights per class from window counts (see TrainConfig.class_weighting)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    if scheme == "none":
        return np.ones(n_classes)
    inverse = len(labels) / (n_classes * np.maximum(counts, 1))
    if scheme == "inverse":
        return inverse
    if scheme == "sqrt":
        return np.sqrt(inverse)
    raise ValueError(f"class_weighting must be 'inverse', 'sqrt' or 'none', got {scheme!r}")


def label_indices(windows: Windows, class_names: Sequence[str], markers: Sequence[str] = ()) -> np.ndarray:
    """Class index of each window's label; a superclass marker (`markers`) gets K + its index."""
    if windows.labels is None:
        raise ValueError("training windows need labels")
    lookup = {name: i for i, name in enumerate([*class_names, *markers])}
    unknown = sorted(set(map(str, windows.labels)) - set(lookup))
    if unknown:
        raise ValueError(
            f"windows carry labels {unknown} that are not among the class names {list(class_names)}"
        )
    return np.array([lookup[str(label)] for label in windows.labels], np.int64)


def aux_statistics(windows: Windows, ignored: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std that standardise the aux inputs; an ignored input gets a std so large that its
    standardised value stays below 1e-10, so the bundle format and the served graphs stay as they are."""
    unknown = sorted(set(ignored) - set(AUX))
    if unknown:
        raise ValueError(f"unknown auxiliary inputs {unknown}; they are {list(AUX)}")
    mean, std = windows.aux.mean(axis=0), windows.aux.std(axis=0)
    for name in ignored:
        std[AUX.index(name)] = IGNORED_AUX_STD
    return mean, std


# ------------------------------------------------------------------------------------------ training


def object_scores(
    prediction: Prediction, windows: Windows, class_names: Sequence[str]
) -> tuple[float, float]:
    """(accuracy, mean log loss) of object predictions (mean window probabilities) against the labels."""
    scores = aggregate_by_object(windows.object_ids, prediction.proba, windows.labels)
    accuracy = float(np.mean(scores.predicted(class_names) == scores.labels))
    lookup = {name: i for i, name in enumerate(class_names)}
    truth = np.array([lookup[str(label)] for label in scores.labels])
    picked = scores.proba[np.arange(len(truth)), truth]
    return accuracy, float(-np.mean(np.log(np.clip(picked, 1e-12, None))))


def _fit(
    model: torch.nn.Module,
    kind: str,
    step_loss,
    train: Windows,
    val: Windows,
    class_names: Sequence[str],
    config: TrainConfig,
    lr: float,
    result: TrainResult,
    superclass_markers: Sequence[str] = (),
) -> None:
    """Shared loop: batches, Adam, plateau LR, early stopping on object accuracy; fills `result`."""
    device = resolve_device(config.device)
    model.to(device)
    rng = np.random.default_rng(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser, mode="min", factor=0.1, patience=config.plateau_patience, min_lr=config.min_lr
    )
    targets = label_indices(train, class_names, superclass_markers)
    best_state, stale, start = None, 0, time.monotonic()
    for epoch in range(config.epochs):
        model.train()
        batches = epoch_batches(
            train.lengths, config.buckets, config.crop_probability, config.batch_size, rng
        )
        losses = []
        bar = tqdm(batches, desc=f"{result.arch} epoch {epoch + 1}", leave=False, disable=not config.progress)
        for length, index in bar:
            x, aux = batch_arrays(train, index, length, rng)
            y = torch.as_tensor(targets[index], device=device)
            loss = step_loss(torch.as_tensor(x, device=device), torch.as_tensor(aux, device=device), y)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimiser.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        accuracy, val_loss = object_scores(run_model(model, kind, val, device, 1024), val, class_names)
        scheduler.step(val_loss)
        entry = {
            "epoch": epoch + 1,
            "train_loss": round(float(np.mean(losses)), 5),
            "val_object_loss": round(val_loss, 5),
            "val_object_accuracy": round(accuracy, 5),
            "lr": optimiser.param_groups[0]["lr"],
            "seconds": round(time.monotonic() - start, 1),
        }
        result.history.append(entry)
        log.info("%s %s", result.arch, entry)
        if config.progress:
            tqdm.write(f"{result.arch} {entry}")
        if accuracy > result.best_val_accuracy or best_state is None:
            result.best_val_accuracy, result.best_epoch, stale = accuracy, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if stale >= config.early_stopping_patience:
            break
        if config.max_seconds is not None and time.monotonic() - start > config.max_seconds:
            log.info(
                "%s: time budget of %.0f s spent after epoch %d", result.arch, config.max_seconds, epoch + 1
            )
            break
    model.load_state_dict(best_state)
    model.to("cpu").eval()
    result.seconds = time.monotonic() - start


def _length_batches(windows: Windows, device, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Full-length (x, aux) tensors of every window, one true length per batch."""
    for length, index in length_groups(windows.lengths, batch_size):
        yield (
            torch.as_tensor(windows.x[index, :length], device=device),
            torch.as_tensor(windows.aux[index], device=device),
        )


def train_classifier(
    train: Windows,
    val: Windows,
    arch: str,
    class_names: Sequence[str],
    hyperparameters: dict | None = None,
    config: TrainConfig | None = None,
    superclass_markers: Sequence[str] = (),
) -> TrainResult:
    """Train an iTCN / TCN / iResNet on labelled windows; validation picks the epoch (object accuracy).

    superclass_markers: labels of training windows known only to their superclass ("superclass:LPV");
    they train through `models.hierarchical.mixed_loss`. Validation windows carry class labels."""
    config = config or TrainConfig()
    hp = {**itcn.DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
    torch.manual_seed(config.seed)
    model = itcn.build_classifier(arch, len(class_names), **hp)
    model.set_aux_scaling(*aux_statistics(train, config.ignored_aux))
    k = len(class_names)
    indices = label_indices(train, class_names, superclass_markers)
    weights = class_weights(indices[indices < k], k, config.class_weighting)
    device = resolve_device(config.device)
    weight_t = torch.as_tensor(weights, dtype=torch.float32, device=device)
    if superclass_markers:
        log_mask = hierarchical.member_log_mask(class_names, superclass_markers).to(device)

    def step_loss(x, aux, y):
        x = x[:, :, list(itcn.INPUT_CHANNELS)].transpose(1, 2)
        if superclass_markers:
            embedding, logits = model.embed(x, aux)
            options = (config.superclass_weight, config.supcon_weight, config.supcon_temperature)
            return hierarchical.mixed_loss(logits, embedding, y, weight_t, log_mask, *options)
        if not config.supcon_weight:
            return torch.nn.functional.cross_entropy(model(x, aux), y, weight=weight_t)
        embedding, logits = model.embed(x, aux)
        supcon = contrastive.supervised_contrastive_loss(embedding, y, config.supcon_temperature)
        return torch.nn.functional.cross_entropy(logits, y, weight=weight_t) + config.supcon_weight * supcon

    result = TrainResult(
        model, "classifier", arch, hp, list(class_names), config, class_weights=weights.tolist()
    )
    _fit(
        model, "classifier", step_loss, train, val, class_names, config, config.lr, result, superclass_markers
    )
    return result


def train_ensemble(
    train: Windows,
    val: Windows,
    arch: str,
    class_names: Sequence[str],
    members: int,
    hyperparameters: dict | None = None,
    config: TrainConfig | None = None,
    combine: str = "logits",
    embedding: str = "concat-unit",
) -> TrainResult:
    """A deep ensemble: `members` classifiers trained as `train_classifier` with seeds config.seed,
    config.seed + 1, ... (same data, split and settings), wrapped in one `models.ensemble.PhaseEnsemble`."""
    config = config or TrainConfig()
    results = [
        train_classifier(
            train, val, arch, class_names, hyperparameters, replace(config, seed=config.seed + i)
        )
        for i in range(members)
    ]
    return ensemble_result(
        [r.model for r in results], [r.summary() for r in results], class_names, config, combine, embedding
    )


def ensemble_result(
    models: Sequence[torch.nn.Module],
    records: Sequence[dict],
    class_names: Sequence[str],
    config: TrainConfig,
    combine: str = "logits",
    embedding: str = "concat-unit",
) -> TrainResult:
    """Trained members and their records ({"arch", "hyperparameters", "training"}: `TrainResult.summary()`
    or a member bundle's metadata) as one ensemble TrainResult; the members must share arch and shape."""
    shapes = {(r["arch"], tuple(sorted(r["hyperparameters"].items()))) for r in records}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members differ in arch or hyperparameters: {sorted(shapes)}")
    arch, hp = records[0]["arch"], dict(records[0]["hyperparameters"])
    seeds = [int(r["training"]["seed"]) for r in records]
    model = ensemble.from_members(models, hp, arch, combine, embedding)
    result = TrainResult(
        model,
        "classifier",
        ensemble.ARCH,
        ensemble.ensemble_hyperparameters(hp, seeds, arch, combine, embedding),
        list(class_names),
        config,
        members=[_member_record(r) for r in records],
    )
    result.seconds = float(sum(r["training"].get("seconds", 0.0) for r in records))
    return result


def _member_record(record: dict) -> dict:
    """A member's "training" record, plus the period search its windows came from when a bundle records
    one other than the one it is served with (metadata "period_search_change")."""
    out = dict(record["training"])
    trained_with = (record.get("period_search_change") or {}).get("trained_with")
    if trained_with:
        out["trained_with_period_search"] = trained_with
    return out


def train_aegmm(
    train: Windows,
    val: Windows,
    class_names: Sequence[str],
    hyperparameters: dict | None = None,
    config: TrainConfig | None = None,
) -> TrainResult:
    """Train the AE-GMM jointly, fix its mixture on the training set and keep the training energies."""
    config = config or TrainConfig()
    hp = {**aegmm.DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
    torch.manual_seed(config.seed)
    model = aegmm.AEGMM(len(class_names), **hp)
    model.set_aux_scaling(*aux_statistics(train))
    weights = class_weights(label_indices(train, class_names), len(class_names), config.class_weighting)
    device = resolve_device(config.device)
    weight_t = torch.as_tensor(weights, dtype=torch.float32, device=device)

    def step_loss(x, aux, y):
        loss, _ = aegmm.joint_loss(model, x, aux, y, weight_t)
        return loss

    result = TrainResult(
        model, "novelty", "aegmm", hp, list(class_names), config, class_weights=weights.tolist()
    )
    _fit(model, "novelty", step_loss, train, val, class_names, config, config.lr_aegmm, result)
    aegmm.fit_gmm(model, _length_batches(train, "cpu", 1024))
    result.train_energies = run_model(model, "novelty", train, "cpu", 1024).energy
    return result
