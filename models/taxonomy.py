"""A two-level taxonomy of periodic variables (group -> superclass -> class) and every label set in ../shared.

Surveys label at different depths: CRTS names 16 classes, EROS-1 four coarse ones, the OGLE-IV LMC set only
classical Cepheids (by pulsation mode), MACHO eleven codes. Mapping each label to a *superclass* lets a
bundle trained on one survey be scored on another (its class probabilities summed per superclass), and
lets coarse labels train a top level.

Superclasses (physics, not survey):
- pulsating: ``RR_Lyrae``, ``Cepheid``, ``delta_Scuti``, ``LPV``;
- binary / rotating: ``eclipsing`` (incl. ellipsoidal ELL and post-common-envelope binaries, as the issue
  groups them), ``RS_CVn`` (spotted, chromospherically active binaries: kept apart, the unseen class);
- ``other``: CRTS "Hump" (Drake et al. 2014 give no physical class).

"Cepheid" joins three physically different types: classical (Population I) Cepheids (OGLE-IV LMC modes
F/1O/..., EROS-1 LMC "cepheid", MACHO LMC "Ceph Fund"/"Ceph 1st": mostly classical), type II Cepheids
(CRTS Cep_II; old, low-mass) and anomalous Cepheids (CRTS ACEP). Only the superclass is shared: a bundle
that knows Cep_II and no classical Cepheid is right at superclass level when it calls an OGLE Cepheid
Cep_II, and wrong at class level by construction.

Sources of the class definitions:
- CRTS: Drake et al. 2014, ApJS 213, 9 (CSDR1 periodic variables; ../shared/data/crts_kvmu/README.txt).
- EROS-1: RAMP variable_stars kit, type 1 binary / 2 cepheid / 3 rr_lyrae / 4 mira
  (../shared/data/eros1_ramp/README.txt; models.data.EROS_LABELS).
- OGLE-IV: Soszynski et al. 2015, Acta Astron. 65, 297 (classical Cepheids in the LMC; ident.dat modes;
  ../shared/data/ogle_lmc_cepheids/README_OGLE.txt); the OGLE-III/IV type tokens of broker's OGLE reader.
- MACHO: Alcock et al. catalogue codes as in Naul et al. 2018 / Tsang & Schultz 2019
  (../shared/data/macho_deepnets_vs_sample/README.txt); "RRL E" is the RRe (second-overtone) RR Lyrae,
  "RRL + GB" an RR Lyrae blended with a giant-branch star.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# group -> superclasses
GROUPS: dict[str, tuple[str, ...]] = {
    "pulsating": ("RR_Lyrae", "Cepheid", "delta_Scuti", "LPV"),
    "binary_rotating": ("eclipsing", "RS_CVn"),
    "other": ("other",),
}

# MACHO catalogue `classification` code -> the label this project gives it (README of the MACHO sample)
MACHO_CODES: dict[int, str] = {
    1: "RRL_AB",
    2: "RRL_C",
    3: "RRL_E",
    4: "Ceph_Fund",
    5: "Ceph_1st",
    6: "LPV_WoodA",
    7: "LPV_WoodB",
    8: "LPV_WoodC",
    9: "LPV_WoodD",
    10: "EB",
    11: "RRL_GB",
}

# survey -> {label: superclass}; every label of every labelled set in ../shared
SURVEY_LABELS: dict[str, dict[str, str]] = {
    "crts": {  # Drake et al. 2014
        "RRab": "RR_Lyrae",
        "RRc": "RR_Lyrae",
        "RRd": "RR_Lyrae",
        "Blazhko": "RR_Lyrae",
        "Cep_II": "Cepheid",  # type II Cepheids
        "ACEP": "Cepheid",  # anomalous Cepheids
        "HADS": "delta_Scuti",
        "LADS": "delta_Scuti",
        "LPV": "LPV",
        "EA": "eclipsing",
        "EW": "eclipsing",
        "beta_lyrae": "eclipsing",
        "ELL": "eclipsing",
        "PCEB": "eclipsing",
        "RS_CVn": "RS_CVn",
        "Hump": "other",
    },
    "eros": {"binary": "eclipsing", "cepheid": "Cepheid", "rr_lyrae": "RR_Lyrae", "mira": "LPV"},
    "ogle": {  # type tokens (label=type); label=type_subtype ("Cep_F", "Cep_1O/2O") maps by its type
        "Cep": "Cepheid",  # OGLE-IV LMC set: classical Cepheids only
        "T2Cep": "Cepheid",
        "ACep": "Cepheid",
        "RRLyr": "RR_Lyrae",
        "DSct": "delta_Scuti",
        "LPV": "LPV",
        "Ecl": "eclipsing",
        "Ell": "eclipsing",
    },
    "gcvs": {"DCEP": "Cepheid"},  # classical Cepheids (OGLE "Cep"): a class of bundles trained on OGLE too
    "macho": {
        "RRL_AB": "RR_Lyrae",
        "RRL_C": "RR_Lyrae",
        "RRL_E": "RR_Lyrae",
        "RRL_GB": "RR_Lyrae",
        "Ceph_Fund": "Cepheid",
        "Ceph_1st": "Cepheid",
        "LPV_WoodA": "LPV",
        "LPV_WoodB": "LPV",
        "LPV_WoodC": "LPV",
        "LPV_WoodD": "LPV",
        "EB": "eclipsing",
    },
}


def _all_labels() -> dict[str, str]:
    merged: dict[str, str] = {}
    for survey, labels in SURVEY_LABELS.items():
        for label, superclass in labels.items():
            if merged.get(label, superclass) != superclass:
                raise ValueError(f"label {label!r} of {survey} maps to two superclasses")
            merged[label] = superclass
    return merged


SUPERCLASS_OF: dict[str, str] = _all_labels()
SUPERCLASSES: tuple[str, ...] = tuple(s for members in GROUPS.values() for s in members)
SUPERCLASS_MARKER = "superclass:"  # label prefix of an object whose label names only its superclass


def superclass_of(label: str, mapping: dict[str, str] | None = None) -> str | None:
    """The superclass of a label of any survey; None when the taxonomy does not know it.

    An OGLE type_subtype label ("Cep_F", "RRLyr_RRab") maps by its type token when the whole label is
    not known itself (so CRTS "beta_lyrae" and "Cep_II" keep their own entries). A superclass marker
    ("superclass:RR_Lyrae", `superclass_label`) maps to its superclass.
    """
    mapping = SUPERCLASS_OF if mapping is None else mapping
    label = str(label)
    if is_superclass_label(label) and (marked := label.removeprefix(SUPERCLASS_MARKER)) in SUPERCLASSES:
        return marked
    if label in mapping:
        return mapping[label]
    head = label.split("_", 1)[0]
    return mapping.get(head) if head in SURVEY_LABELS["ogle"] else None


def superclass_label(label: str) -> str:
    """The marker label of a label that names only a superclass (EROS-1 "rr_lyrae" ->
    "superclass:RR_Lyrae"): such objects train a class-level network through `models.hierarchical`.
    ValueError for a label the taxonomy does not know."""
    superclass = superclass_of(label)
    if superclass is None:
        raise ValueError(f"label {label!r} has no superclass in models.taxonomy")
    return SUPERCLASS_MARKER + superclass


def is_superclass_label(label) -> bool:
    return str(label).startswith(SUPERCLASS_MARKER)


def group_of(superclass: str) -> str:
    """pulsating / binary_rotating / other; ValueError for an unknown superclass."""
    for group, members in GROUPS.items():
        if superclass in members:
            return group
    raise ValueError(f"unknown superclass {superclass!r}; valid: {list(SUPERCLASSES)}")


def unmapped(labels: Iterable[str], mapping: dict[str, str] | None = None) -> list[str]:
    """The distinct labels with no superclass (sorted)."""
    return sorted({str(x) for x in labels if superclass_of(str(x), mapping) is None})


def superclass_matrix(
    class_names: Sequence[str], mapping: dict[str, str] | None = None
) -> tuple[list[str], list[list[float]]]:
    """(superclasses of the bundle, in first-appearance order; (K, S) 0/1 matrix class -> superclass).

    proba (n, K) @ matrix gives each superclass's probability (the sum over its classes).
    ValueError names any bundle class the taxonomy lacks.
    """
    missing = unmapped(class_names, mapping)
    if missing:
        raise ValueError(f"bundle classes {missing} have no superclass in models.taxonomy")
    supers = [superclass_of(c, mapping) for c in class_names]
    names = list(dict.fromkeys(supers))
    return names, [[float(s == name) for name in names] for s in supers]
