"""The superclass taxonomy: a hand-made mapping scored by hand; every real label set in ../shared mapped."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from models.data import EROS_LABELS
from models.evaluate import superclass_metrics
from models.taxonomy import (
    MACHO_CODES,
    SUPERCLASSES,
    group_of,
    superclass_matrix,
    superclass_of,
    unmapped,
)

HAND = {"ab": "RR", "c": "RR", "ea": "EB", "ew": "EB", "rs": "ROT", "cep": "CEP", "coarse_rr": "RR"}


def test_superclass_metrics_by_hand():
    # bundle classes ab, c, ea -> superclasses RR (ab + c) and EB (ea)
    classes = ["ab", "c", "ea"]
    proba = np.array(
        [
            [0.4, 0.4, 0.2],  # coarse_rr: RR 0.8 -> right (class argmax would be ab, also RR)
            [0.3, 0.3, 0.4],  # coarse_rr: class argmax ea, but RR 0.6 > EB 0.4 -> right by the sum
            [0.1, 0.1, 0.8],  # ew: EB -> right (ew is not a bundle class, its superclass is)
            [0.6, 0.1, 0.3],  # ea: RR -> wrong
            [0.2, 0.2, 0.6],  # rs: superclass ROT unknown to the bundle -> unseen, not scored
            [0.5, 0.5, 0.0],  # cep: CEP unknown -> unseen
        ]
    )
    labels = ["coarse_rr", "coarse_rr", "ew", "ea", "rs", "cep"]
    m = superclass_metrics(labels, proba, classes, HAND)
    assert m["superclasses"] == ["RR", "EB"]
    assert m["classes_of"] == {"RR": ["ab", "c"], "EB": ["ea"]}
    assert m["n"] == 4
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 / 2) / 2)
    assert m["confusion_matrix"] == {"labels": ["RR", "EB"], "matrix": [[2, 0], [1, 1]]}
    assert m["unseen_superclasses"] == {"CEP": 1, "ROT": 1}
    assert m["labels_by_superclass"]["RR"] == ["coarse_rr"]


def test_superclass_metrics_name_unmapped_labels_and_classes():
    with pytest.raises(ValueError, match=r"labels \['zz'\]"):
        superclass_metrics(["ab", "zz"], np.ones((2, 1)), ["ab"], HAND)
    with pytest.raises(ValueError, match=r"bundle classes \['yy'\]"):
        superclass_matrix(["ab", "yy"], HAND)
    with pytest.raises(ValueError, match="does not match"):
        superclass_metrics(["ab"], np.ones((1, 2)), ["ab"], HAND)


def test_cepheids_of_every_kind_share_the_superclass_only():
    for label in ("Cep_II", "ACEP", "cepheid", "Cep", "Cep_F", "Cep_1O/2O", "Ceph_Fund", "Ceph_1st"):
        assert superclass_of(label) == "Cepheid", label
    # class-level names stay distinct: the CRTS type II Cepheid is not an OGLE classical Cepheid
    assert superclass_of("beta_lyrae") == "eclipsing" and superclass_of("RS_CVn") == "RS_CVn"
    assert superclass_of("beta") is None and superclass_of("Foo_F") is None
    assert {group_of(s) for s in SUPERCLASSES} == {"pulsating", "binary_rotating", "other"}
    with pytest.raises(ValueError, match="unknown superclass"):
        group_of("quasar")


def test_every_label_in_shared_data_has_a_superclass(shared_data):
    with open(shared_data / "crts_kvmu" / "crts_train_labels_periods.csv") as f:
        crts = {row["class"] for row in csv.DictReader(f)}
    assert len(crts) == 16
    eros_types = pd.read_csv(shared_data / "eros1_ramp" / "train.csv")["type"].unique()
    eros = {EROS_LABELS[int(t)] for t in eros_types}
    assert eros == {"binary", "cepheid", "rr_lyrae", "mira"}
    ident = (shared_data / "ogle_lmc_cepheids" / "ident.dat").read_text().splitlines()
    ogle = {"Cep_" + line[18:26].strip() for line in ident if line.strip()}
    assert "Cep_F" in ogle and "Cep_1O/2O" in ogle
    codes = pd.read_csv(shared_data / "macho_deepnets_vs_sample" / "macho_vs_catalog.csv")["classification"]
    macho = {MACHO_CODES[int(c)] for c in codes.unique()}
    assert len(macho) == 11
    assert unmapped(crts | eros | ogle | macho) == []
    assert {superclass_of(x) for x in eros} == {"eclipsing", "Cepheid", "RR_Lyrae", "LPV"}
