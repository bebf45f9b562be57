"""The labelled archives of ../shared/data as evaluation runs, and the per-survey table of their reports.

Each survey is one `varstream evaluate` run with the reader flags its data need:
- crts: the CRTS tarball, `--split test` (the by-object test split of the bundle's own seed; CRTS-trained
  bundles have seen the rest; evaluate-surveys --test-split picks which surveys are split). Its
  "catalogue" periods are the FATS Lomb-Scargle periods of the kit, not Drake's: period recovery there is
  agreement with FATS (EW/EA at half the orbit), not truth.
- eros: EROS-1 b and r bands together; the reader's period is already the true period / div_period.
- ogle: OGLE-IV LMC classical Cepheids, I and V bands, labelled by mode (Cep_F, Cep_1O, ...); only F-mode
  stars have catalogue periods (cepFO4.dat).
- macho: the 15 MACHO light curves joined with their catalogue class codes and red-band periods
  (`macho_labelled_csv`), read as a CSV archive. 15 objects: a smoke check, not a science number.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from broker.errors import ArchiveError
from models.taxonomy import MACHO_CODES

# MACHO photometry: sentinels (-99 magnitudes, negative errors, 9.999 errors) mark unusable points
MACHO_MAX_ERROR = 1.0
# band -> (magnitude, error, catalogue mean instrumental magnitude, catalogue mean Kron-Cousins magnitude)
MACHO_BANDS = {"R": ("rmag", "rerr", "magave_r", "magave_kr"), "B": ("bmag", "berr", "magave_b", "magave_kv")}


@dataclass
class Survey:
    """One evaluate run: FORMAT:PATH, its reader flags (as on the command line) and its --split."""

    name: str
    data: str
    flags: list[str] = field(default_factory=list)
    split: str = "all"
    note: str = ""
    prepare: Callable[[], str] | None = None  # writes derived input files; returns a note on them


SURVEY_NAMES = ("crts", "eros", "ogle", "macho")


def default_data_root() -> Path:
    """../shared/data beside the repository (as the test fixtures find it)."""
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def shared_surveys(data_root: Path, work_dir: Path, names: list[str] | None = None) -> list[Survey]:
    """The surveys of ../shared/data (all, or those named, in this order); MACHO's CSV goes to work_dir."""
    builders = {
        "crts": lambda: Survey(
            "crts",
            f"crts:{data_root / 'crts_kvmu'}",
            split="test",
            note="periods: FATS LS (not catalogue)",
        ),
        "eros": lambda: Survey("eros", f"eros:{data_root / 'eros1_ramp'}", note="periods: period/div_period"),
        "ogle": lambda: Survey(
            "ogle",
            f"ogle:{data_root / 'ogle_lmc_cepheids'}",
            ["--bands", "I,V", "--label", "type_subtype"],
            note="periods: F mode only (cepFO4)",
        ),
        "macho": lambda: _macho_survey(data_root, work_dir),
    }
    unknown = sorted(set(names or []) - set(builders))
    if unknown:
        raise ArchiveError(f"unknown survey(s) {unknown}; valid: {list(builders)}")
    return [builders[name]() for name in (names or list(builders))]


def _macho_survey(data_root: Path, work_dir: Path) -> Survey:
    path = work_dir / "macho_labelled.csv"
    flags = ["--id-col", "object_id", "--time-col", "mjd", "--mag-col", "mag", "--err-col", "magerr"]
    flags += ["--band-col", "band", "--class-col", "class", "--period-col", "period"]

    def prepare() -> str:
        _, dropped = macho_labelled_csv(data_root / "macho_deepnets_vs_sample", path)
        return f"{dropped} bad points cut"

    return Survey("macho", f"csv:{path}", flags, note="periods: catalogue period_r", prepare=prepare)


def macho_labelled_csv(folder: Path, out: Path) -> tuple[Path, int]:
    """Join data_TAPquery/LC_<field>.<tile>.<seqn>.csv with macho_vs_catalog.csv into one labelled CSV.

    Columns object_id, mjd, mag, magerr, band (R/B), class (models.taxonomy.MACHO_CODES), period (catalogue
    period_r, days). MACHO magnitudes are instrumental (~ -9); each band is shifted by the catalogue's mean
    Kron-Cousins minus mean instrumental magnitude (R -> magave_kr, B -> magave_kv; no colour term), so the
    means the classifier sees are standard ones. Points with a sentinel magnitude (< -90) or an error
    outside (0, 1] mag are cut.
    Returns (path, points cut). ArchiveError names a light curve the catalogue lacks.
    """
    catalogue = {}
    with open(folder / "macho_vs_catalog.csv", newline="") as f:
        for row in csv.DictReader(f):
            catalogue[(row["field"], row["tile"], row["seqn"])] = row
    files = sorted((folder / "data_TAPquery").glob("LC_*.csv"))
    if not files:
        raise ArchiveError(f"{folder / 'data_TAPquery'}: no LC_*.csv light curves")
    out.parent.mkdir(parents=True, exist_ok=True)
    dropped = 0
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["object_id", "mjd", "mag", "magerr", "band", "class", "period"])
        for file in files:
            key = tuple(file.stem.removeprefix("LC_").split("."))
            entry = catalogue.get(key)
            if entry is None:
                raise ArchiveError(f"{file}: field.tile.seqn {'.'.join(key)} is not in macho_vs_catalog.csv")
            label = MACHO_CODES.get(int(entry["classification"]))
            if label is None:
                raise ArchiveError(f"{file}: unknown MACHO class code {entry['classification']!r}")
            object_id = "MACHO-" + ".".join(key)
            with open(file, newline="") as lc:
                for row in csv.DictReader(lc):
                    for band, (mag_col, err_col, mean_col, standard_col) in MACHO_BANDS.items():
                        mag, err = float(row[mag_col]), float(row[err_col])
                        if not (mag > -90 and 0 < err <= MACHO_MAX_ERROR and math.isfinite(mag)):
                            dropped += 1
                            continue
                        mag += float(entry[standard_col]) - float(entry[mean_col])
                        writer.writerow(
                            [object_id, row["dateobs"], round(mag, 4), err, band, label, entry["period_r"]]
                        )
    return out, dropped


def summary_row(survey: Survey, metrics: dict) -> dict:
    """The per-survey numbers of one evaluate metrics.json (None where not defined)."""
    superclass = metrics.get("superclass", {})
    novelty = metrics.get("novelty_head") or metrics.get("novelty") or {}  # the served score first
    periods = metrics.get("period_recovery") or {}

    super_novelty = superclass.get("novelty") or {}
    super_p95 = super_novelty.get("p95") or {}
    n_scored = (novelty.get("n_seen") or 0) + (novelty.get("n_unseen") or 0)

    def number(value):
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

    return {
        "survey": survey.name,
        "data": survey.data,
        "split": survey.split,
        "note": survey.note,
        "n_objects": metrics.get("n_objects"),
        "class_n": metrics.get("n_objects_classified"),
        "class_accuracy": number(metrics.get("accuracy")),
        "class_balanced_accuracy": number(metrics.get("balanced_accuracy")),
        "superclass_n": superclass.get("n"),
        "superclass_accuracy": number(superclass.get("accuracy")),
        "superclass_balanced_accuracy": number(superclass.get("balanced_accuracy")),
        "unseen_superclasses": superclass.get("unseen_superclasses"),
        "superclass_novelty_n_unseen": super_novelty.get("n_unseen"),
        "superclass_novelty_roc_auc": number(super_novelty.get("roc_auc")),
        "superclass_novelty_p95_recall": number(
            super_p95.get("recall") if super_novelty.get("n_unseen") else None
        ),
        "superclass_novelty_p95_known_flagged": number(super_p95.get("known_flagged_fraction")),
        "novelty_n_unseen": novelty.get("n_unseen"),
        "novelty_roc_auc": number(novelty.get("roc_auc")),
        "novelty_p95_recall": number((novelty.get("p95") or {}).get("recall")),
        "novelty_p95_known_flagged": number((novelty.get("p95") or {}).get("known_flagged_fraction")),
        "novelty_p95_flagged": _share((novelty.get("p95") or {}).get("n_flagged"), n_scored),
        "period_n": periods.get("n"),
        "period_within_1pct": number(periods.get("within_tolerance")),
        "period_double": number(periods.get("double")),
        "period_half": number(periods.get("half")),
    }


def _share(count: int | None, total: int) -> float | None:
    return None if count is None or not total else count / total


COLUMNS = {
    "survey": "survey",
    "n_objects": "objects",
    "class_n": "class n",
    "class_accuracy": "class acc",
    "class_balanced_accuracy": "class bal",
    "superclass_n": "super n",
    "superclass_accuracy": "super acc",
    "superclass_balanced_accuracy": "super bal",
    "superclass_novelty_n_unseen": "super unseen n",
    "superclass_novelty_roc_auc": "super nov AUC",
    "superclass_novelty_p95_recall": "super p95 recall",
    "superclass_novelty_p95_known_flagged": "super p95 known flagged",
    "novelty_n_unseen": "unseen n",
    "novelty_roc_auc": "nov AUC",
    "novelty_p95_recall": "p95 recall",
    "novelty_p95_known_flagged": "p95 known flagged",
    "novelty_p95_flagged": "p95 flagged (all)",
    "period_n": "P n",
    "period_within_1pct": "P 1%",
    "period_double": "P x2",
    "period_half": "P x0.5",
    "note": "note",
}


def markdown_table(rows: list[dict]) -> str:
    """The rows as a GitHub markdown table ("-" where a number is not defined)."""

    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(COLUMNS.values()) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['survey']} | error: {row['error']} |" + " |" * (len(COLUMNS) - 2))
            continue
        lines.append("| " + " | ".join(cell(row.get(key)) for key in COLUMNS) + " |")
    return "\n".join(lines) + "\n"
