"""Plots and numbers of one run, from its annotation records, for people who would rather look than read.

Input: the decoded annotation records (schemas/annotation.avsc) of a run — the `annotations.jsonl` that
`varstream demo` writes, or the output topic read from Kafka. Output, in one folder:

    latency.png         end-to-end latency (alert's Kafka timestamp -> annotation made), log-scale histogram
    throughput.png      annotated alerts by arrival (Kafka timestamp) and annotations by time made:
                        per second, and cumulative (horizontal gap = latency, vertical gap = backlog)
    class_mix.png       annotations per predicted class
    novelty_energy.png  novelty scores (k-NN head distances or AE-GMM energies), novel and not, with the
                        p80/p95 thresholds of the model that scored them
    report.json         the numbers behind the plots (see `summarize`)
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from broker.errors import ArchiveError, ConfigError

ANNOTATIONS_FILE = "annotations.jsonl"
REPORT_FILE = "report.json"
PLOT_FILES = ("latency.png", "throughput.png", "class_mix.png", "novelty_energy.png")
LATENCY_BUDGET_S = 60.0  # LSST: 98% of alerts within 60 s of readout
LATENCY_QUANTILES = (50, 90, 95, 99)
MAX_THROUGHPUT_BINS = 120
REQUIRED_FIELDS = ("alertId", "objectId", "predicted_class", "alert_timestamp_ms", "annotated_at_ms")


@dataclass(frozen=True)
class RunAnnotations:
    """The columns of a run's n annotation records that the report uses.

    alert_timestamp_ms, annotated_at_ms: (n,) int64 [ms since Unix epoch]; novelty_energy: (n,) float64
    [nats], NaN where the record has none; is_novel: (n,) bool (null counts as not novel).
    """

    alert_id: np.ndarray
    object_id: np.ndarray
    predicted_class: np.ndarray
    alert_timestamp_ms: np.ndarray
    annotated_at_ms: np.ndarray
    novelty_energy: np.ndarray
    is_novel: np.ndarray
    novelty_model_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.alert_id)

    @property
    def latency_s(self) -> np.ndarray:
        return (self.annotated_at_ms - self.alert_timestamp_ms) / 1000.0

    @property
    def start_ms(self) -> int:
        """The earliest time of the run: first alert (or first annotation, under clock skew)."""
        return int(min(self.alert_timestamp_ms.min(), self.annotated_at_ms.min()))

    @property
    def end_ms(self) -> int:
        return int(self.annotated_at_ms.max())

    @classmethod
    def from_records(cls, records: list[dict]) -> RunAnnotations:
        if not records:
            raise ArchiveError("no annotation records to report on")
        for i, record in enumerate(records):
            missing = [name for name in REQUIRED_FIELDS if record.get(name) is None]
            if missing:
                raise ArchiveError(
                    f"annotation record {i} (alertId {record.get('alertId')!r}) lacks {missing}"
                )

        def column(name: str, dtype: type | str) -> np.ndarray:
            return np.array([record[name] for record in records], dtype=dtype)

        energy = [record.get("novelty_energy") for record in records]
        return cls(
            alert_id=column("alertId", str),
            object_id=column("objectId", str),
            predicted_class=column("predicted_class", str),
            alert_timestamp_ms=column("alert_timestamp_ms", np.int64),
            annotated_at_ms=column("annotated_at_ms", np.int64),
            novelty_energy=np.array([np.nan if e is None else e for e in energy], dtype=np.float64),
            is_novel=np.array([bool(record.get("is_novel")) for record in records]),
            novelty_model_names=tuple(
                sorted({r["novelty_model_name"] for r in records if r.get("novelty_model_name")})
            ),
        )


# ---- inputs ---------------------------------------------------------------------------------------------


def read_annotations_file(path: str | Path) -> list[dict]:
    """Records of a JSON-lines file (one annotation per line; blank lines ignored)."""
    path = Path(path)
    if path.is_dir():
        path = path / ANNOTATIONS_FILE
    if not path.is_file():
        raise ConfigError(f"annotations file {path} does not exist")
    records = []
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ArchiveError(f"{path}:{number}: not a JSON record: {exc}") from exc
            if not isinstance(record, dict):
                raise ArchiveError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
    return records


def read_annotations_topic(
    bootstrap_servers: str, topic: str, timeout_s: float = 60.0
) -> tuple[list[dict], int]:
    """Every committed annotation on `topic`, from the beginning to its current end; (records, undecodable).

    Reads by assignment (no consumer group joins, no offsets committed), so it leaves the topic untouched.
    """
    from broker.codecs.annotations import decode_annotation
    from broker.kafka_views import read_snapshot

    snapshot = read_snapshot(bootstrap_servers, topic, decode_annotation, timeout_s, "varstream-report")
    return snapshot.records, sum(snapshot.undecodable.values())


ENERGY_LABEL = "AE-GMM sample energy [nats]"
HEAD_LABEL = "k-NN novelty head: distance of the unit iTCN embedding (0..2)"


def novelty_thresholds(bundle_dir: str | Path | None, model_names: tuple[str, ...] = ()) -> dict:
    """The p80/p95 thresholds of the novelty model that scored the run, what its score is, and where from.

    The model is an AE-GMM bundle (training-energy thresholds [nats]) or a classifier bundle's k-NN
    novelty head (thresholds of its validation windows' scores, all lengths). Without `bundle_dir`, the
    shipped bundle whose name, or whose head's name, the records carry (if exactly one) is used.
    Returns {"source": path or None, "thresholds": {...}, "score": axis label of the scores}.
    """
    from models.bundle import BUNDLES_DIR, METADATA_FILE

    candidates: list[Path] = []
    if bundle_dir is not None:
        candidates = [Path(bundle_dir)]
    elif len(model_names) == 1:
        for metadata_file in sorted(BUNDLES_DIR.glob(f"*/{METADATA_FILE}")):
            document = json.loads(metadata_file.read_text())
            head_name = (document.get("novelty_head") or {}).get("name")
            if model_names[0] in (document.get("name"), head_name):
                candidates.append(metadata_file.parent)
    for directory in candidates:
        metadata_file = directory / METADATA_FILE
        if not metadata_file.is_file():
            raise ConfigError(f"novelty bundle {directory}: no {METADATA_FILE}")
        document = json.loads(metadata_file.read_text())
        head = document.get("novelty_head") or {}
        served_by_head = bool(head) and (bundle_dir is not None or head.get("name") in model_names)
        if served_by_head and head.get("thresholds"):
            thresholds, label = head["thresholds"], HEAD_LABEL
        else:
            thresholds, label = (document.get("novelty") or {}).get("thresholds"), ENERGY_LABEL
        if not thresholds:
            raise ConfigError(
                f"bundle {directory} has no novelty thresholds (neither an AE-GMM nor a k-NN novelty head)"
            )
        return {
            "source": str(directory),
            "thresholds": {k: float(v) for k, v in thresholds.items()},
            "score": label,
        }
    return {"source": None, "thresholds": {}, "score": _score_label(model_names)}


def _score_label(model_names: tuple[str, ...]) -> str:
    """Axis label when no bundle was found: a head's name ends in -knn<k> (models.novelty_head)."""
    if model_names and all("-knn" in name for name in model_names):
        return HEAD_LABEL
    return ENERGY_LABEL if model_names else "novelty score"


# ---- numbers --------------------------------------------------------------------------------------------


def throughput_bins(times_ms: np.ndarray, start_ms: int, end_ms: int) -> tuple[float, np.ndarray]:
    """(bin width [s], counts per bin) over [start, end]: 1 s bins, wider when the run is long."""
    span_s = max((end_ms - start_ms) / 1000.0, 1.0)
    width_s = max(1.0, math.ceil(span_s / MAX_THROUGHPUT_BINS))
    n_bins = max(1, math.ceil(span_s / width_s))
    counts, _ = np.histogram((times_ms - start_ms) / 1000.0, bins=n_bins, range=(0.0, n_bins * width_s))
    return width_s, counts


def summarize(run: RunAnnotations, thresholds: dict | None = None) -> dict:
    """The report's numbers: counts, latency quantiles [s] and budget share, throughput [1/s], classes,
    novelty (score quantiles, in the unit of `summary["novelty"]["score"]`, share above each threshold)."""
    thresholds = thresholds or {"source": None, "thresholds": {}, "score": ENERGY_LABEL}
    latency = run.latency_s
    width_s, out_counts = throughput_bins(run.annotated_at_ms, run.start_ms, run.end_ms)
    _, in_counts = throughput_bins(run.alert_timestamp_ms, run.start_ms, run.end_ms)
    out_span_s = max((run.annotated_at_ms.max() - run.annotated_at_ms.min()) / 1000.0, width_s)
    classes = Counter(run.predicted_class.tolist())
    energies = run.novelty_energy[np.isfinite(run.novelty_energy)]
    novelty: dict = {
        "n_with_energy": len(energies),
        "n_novel": int(run.is_novel.sum()),
        "novel_fraction": float(run.is_novel.mean()),
        "model_names": list(run.novelty_model_names),
        "thresholds": thresholds["thresholds"],
        "thresholds_source": thresholds["source"],
        "score": thresholds.get("score", ENERGY_LABEL),
    }
    if len(energies):
        novelty["energy_quantiles"] = {f"p{q}": float(np.percentile(energies, q)) for q in (5, 50, 95)}
        novelty["fraction_above_threshold"] = {
            name: float((energies > value).mean()) for name, value in thresholds["thresholds"].items()
        }
    return {
        "n_annotations": len(run),
        "n_alerts": len(np.unique(run.alert_id)),
        "n_duplicate_annotations": len(run) - len(np.unique(run.alert_id)),
        "n_objects": len(np.unique(run.object_id)),
        "first_alert_ms": int(run.alert_timestamp_ms.min()),
        "last_annotation_ms": run.end_ms,
        "latency_s": {
            **{f"p{q}": float(np.percentile(latency, q)) for q in LATENCY_QUANTILES},
            "mean": float(latency.mean()),
            "max": float(latency.max()),
            "budget": LATENCY_BUDGET_S,
            "within_budget_fraction": float((latency <= LATENCY_BUDGET_S).mean()),
            "n_negative": int((latency < 0).sum()),  # clock skew between the alert's producer and us
        },
        "throughput_per_s": {
            "bin_s": width_s,
            "annotations_mean": float(len(run) / out_span_s),
            "annotations_peak": float(out_counts.max() / width_s),
            # arrival (Kafka timestamp) of the alerts that were annotated; skipped ones are not in the records
            "annotated_alerts_arrival_peak": float(in_counts.max() / width_s),
        },
        "classes": dict(classes.most_common()),
        "class_fractions": {name: count / len(run) for name, count in classes.most_common()},
        "novelty": novelty,
    }


# ---- plots ----------------------------------------------------------------------------------------------


def plot_latency(run: RunAnnotations, summary: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    latency = np.clip(run.latency_s, 1e-3, None)
    low, high = min(latency.min(), 0.01), max(latency.max(), LATENCY_BUDGET_S * 2)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(latency, bins=np.geomspace(low, high, 60), color="#4878a8")
    ax.set_xscale("log")
    for q, style in zip(LATENCY_QUANTILES, ("-", ":", "--", "-."), strict=True):
        value = summary["latency_s"][f"p{q}"]
        ax.axvline(value, color="black", linestyle=style, label=f"p{q} = {value:.2f} s")
    ax.axvline(LATENCY_BUDGET_S, color="red", label=f"budget {LATENCY_BUDGET_S:.0f} s")
    share = summary["latency_s"]["within_budget_fraction"]
    ax.set(
        xlabel="end-to-end latency [s]",
        ylabel="annotations",
        title=f"End-to-end latency of {len(run)} annotations ({share:.1%} within budget)",
    )
    ax.legend()
    _save(fig, path)


def plot_throughput(run: RunAnnotations, path: Path) -> None:
    import matplotlib.pyplot as plt

    width_s, out_counts = throughput_bins(run.annotated_at_ms, run.start_ms, run.end_ms)
    _, in_counts = throughput_bins(run.alert_timestamp_ms, run.start_ms, run.end_ms)
    t = np.arange(len(out_counts)) * width_s
    arrived, annotated = "annotated alerts, by arrival (Kafka timestamp)", "annotations, by time made"
    fig, (rate, total) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(1, 1))
    rate.step(t, in_counts / width_s, where="post", label=arrived, color="#888888")
    rate.step(t, out_counts / width_s, where="post", label=annotated, color="#d1603d")
    rate.set(ylabel="per second", title="Throughput of the annotated alerts")
    # Cumulative counts: the horizontal gap between the curves is the latency, the vertical one the backlog.
    for times_ms, label, color in (
        (run.alert_timestamp_ms, arrived, "#888888"),
        (run.annotated_at_ms, annotated, "#d1603d"),
    ):
        total.step(
            np.sort(times_ms - run.start_ms) / 1000.0,
            np.arange(1, len(run) + 1),
            where="post",
            label=label,
            color=color,
        )
    total.set(xlabel=f"time since the first alert [s] (rates in bins of {width_s:g} s)", ylabel="cumulative")
    total.legend(loc="upper left")
    _save(fig, path)


def plot_class_mix(summary: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    names = list(summary["classes"])[::-1]
    counts = [summary["classes"][name] for name in names]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.45 * len(names) + 1)))
    bars = ax.barh(names, counts, color="#6a9f58")
    ax.bar_label(
        bars, [f"{c} ({summary['class_fractions'][n]:.1%})" for n, c in zip(names, counts, strict=True)]
    )
    ax.set(xlabel="annotations", title="Predicted class mix")
    ax.margins(x=0.2)
    _save(fig, path)


def plot_novelty(run: RunAnnotations, summary: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    finite = np.isfinite(run.novelty_energy)
    if not finite.any():
        ax.text(0.5, 0.5, "no novelty energies in this run (no novelty model)", ha="center", va="center")
        ax.set_axis_off()
    else:
        energies = run.novelty_energy[finite]
        novel = run.is_novel[finite]
        bins = np.histogram_bin_edges(energies, bins=50)
        ax.hist(
            [energies[~novel], energies[novel]],
            bins=bins,
            stacked=True,
            color=["#4878a8", "#d1603d"],
            label=["not novel", "novel"],
        )
        for (name, value), style in zip(
            summary["novelty"]["thresholds"].items(), ("--", "-", ":"), strict=False
        ):
            ax.axvline(value, color="black", linestyle=style, label=f"{name} = {value:.3g}")
        ax.set(
            xlabel=summary["novelty"].get("score", ENERGY_LABEL),
            ylabel="annotations",
            title=f"Novelty energy ({summary['novelty']['novel_fraction']:.1%} novel)",
        )
        ax.legend()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_report(
    records: list[dict],
    out_dir: str | Path,
    novelty_bundle: str | Path | None = None,
    source: dict | None = None,
) -> dict:
    """Write the four PNGs and report.json into `out_dir` (created); returns the summary.

    `novelty_bundle`: the bundle whose thresholds to draw (default: the shipped one the records name);
    `source`: where the records came from, copied into report.json.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = RunAnnotations.from_records(records)
    summary = summarize(run, novelty_thresholds(novelty_bundle, run.novelty_model_names))
    latency_png, throughput_png, class_png, novelty_png = (out_dir / name for name in PLOT_FILES)
    plot_latency(run, summary, latency_png)
    plot_throughput(run, throughput_png)
    plot_class_mix(summary, class_png)
    plot_novelty(run, summary, novelty_png)
    summary["plots"] = list(PLOT_FILES)
    summary["source"] = source or {}
    (out_dir / REPORT_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
