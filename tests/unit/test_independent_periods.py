"""Independent periods for EROS-1 stars: the position match, the three-way agreement table, and the real
cross-match of ../shared's EROS-1, OGLE-IV and MACHO tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from broker.offline.independent_periods import (
    IndependentPeriod,
    agreement,
    eros_independent_periods,
    eros_positions,
    match,
)

ARCSEC = 1.0 / 3600.0


def _stars() -> pd.DataFrame:
    return pd.DataFrame(
        {"object_id": ["a", "b", "c"], "ra": [80.0, 81.0, 82.0], "dec": [-69.0, -69.5, -70.0]}
    )


def test_match_takes_the_nearest_object_within_the_radius_and_prefers_the_first_source():
    stars = _stars()
    first = pd.DataFrame({"ra": [80.0 + 1.0 * ARCSEC], "dec": [-69.0], "period": [3.1]})
    second = pd.DataFrame(
        {
            "ra": [80.0, 81.0, 81.0, 82.0],
            "dec": [-69.0, -69.5 + 2.0 * ARCSEC, -69.5 + 0.5 * ARCSEC, -70.0 + 5.0 * ARCSEC],
            "period": [0.5, 0.6, 0.7, 0.8],
        }
    )
    found = match(stars, {"ogle": first, "macho": second}, radius_arcsec=3.0)
    assert set(found) == {"a", "b"}  # "c" has nothing within 3"
    assert (
        found["a"].source == "ogle" and found["a"].period_days == 3.1
    )  # first source wins over an exact match
    assert found["a"].separation_arcsec == pytest.approx(1.0 * np.cos(np.radians(69.0)), rel=1e-3)
    assert found["b"] == IndependentPeriod(0.7, "macho", pytest.approx(0.5, rel=1e-3))  # the nearer of two


def test_match_ignores_source_objects_without_a_period():
    stars = _stars().iloc[:1]
    source = pd.DataFrame({"ra": [80.0, 80.0], "dec": [-69.0, -69.0 + ARCSEC], "period": [np.nan, 0.0]})
    assert match(stars, {"s": source}) == {}


def test_agreement_counts_ours_against_each_catalogue_and_on_their_consensus():
    ids = ["a", "b", "c", "d", "e"]
    labels = ["rr", "rr", "rr", "cep", "cep"]
    catalogue = np.array([0.5, 0.5, 0.5, 3.0, 10.0])
    alias = 1 / (1 / 0.5 - 1.0)  # the catalogue's daily alias
    independent = {
        "a": IndependentPeriod(0.5, "macho", 1.0),  # all agree
        "b": IndependentPeriod(alias, "macho", 1.0),  # the catalogue is the alias; we find the other
        "c": IndependentPeriod(0.5, "macho", 1.0),  # the catalogues agree, we do not
        "d": IndependentPeriod(3.0, "ogle_iv_f", 0.2),  # all agree
    }  # "e" has no independent period: left out
    found = np.array([0.5, alias, 0.25, 3.0 * 1.002, 10.0])
    table = agreement(ids, labels, found, catalogue, independent)
    assert table["n"] == 4
    assert table["catalogue_vs_independent"] == 0.75
    assert table["ours_vs_catalogue"] == 0.5 and table["ours_vs_independent"] == 0.75
    assert table["consensus"] == {"n": 3, "ours": pytest.approx(2 / 3)}
    assert table["outcomes"] == {
        "all_agree": 2,
        "ours_and_independent_not_catalogue": 1,
        "ours_and_catalogue_not_independent": 0,
        "catalogues_not_ours": 1,
        "none": 0,
    }
    assert table["by_source"]["ogle_iv_f"]["n"] == 1 and table["by_class"]["rr"]["n"] == 3
    assert agreement(["e"], ["cep"], found[-1:], catalogue[-1:], independent) == {"n": 0}


def test_eros_positions_read_sexagesimal_j2000(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text(
        ",asc_d,asc_m,asc_s,dec_d,dec_m,dec_s\n"
        "135_9613,5.0,40.0,51.37,-70.0,13.0,58.78\n"
        "1_2,5.0,0.0,0.0,-0.0,30.0,0.0\n"
    )
    table = eros_positions(csv)
    assert list(table["object_id"]) == ["135_9613", "1_2"]
    assert table["ra"].iloc[0] == pytest.approx(15 * (5 + 40 / 60 + 51.37 / 3600))
    assert table["dec"].iloc[0] == pytest.approx(-(70 + 13 / 60 + 58.78 / 3600))
    assert table["dec"].iloc[1] == pytest.approx(-0.5)  # "-0" degrees: south of the equator


def test_real_eros_stars_match_ogle_and_macho_and_their_periods_mostly_agree(shared_data):
    """The cross-match on the real tables: over a thousand EROS-1 stars get an independent period, the
    OGLE-IV matches are Cepheids, and the two catalogues agree for most (not all) of them."""
    from models.data import read_eros

    independent = eros_independent_periods(shared_data)
    objects = {o.object_id: o for o in read_eros(shared_data / "eros1_ramp")}
    assert 1000 < len(independent) < len(objects)
    assert set(independent) <= set(objects)
    ogle = [k for k, v in independent.items() if v.source == "ogle_iv_f"]
    assert len(ogle) > 300
    assert np.mean([objects[k].label == "cepheid" for k in ogle]) > 0.9  # 0.927: EROS-1 labels others
    assert max(v.separation_arcsec for v in independent.values()) < 3.0
    ids = sorted(independent)
    catalogue = np.array([objects[k].period for k in ids])
    table = agreement(ids, [objects[k].label for k in ids], catalogue, catalogue, independent)
    assert 0.6 < table["catalogue_vs_independent"] < 0.95
    assert table["by_source"]["ogle_iv_f"]["catalogue_vs_independent"] > 0.85


def test_on_ogle_matched_cepheids_our_search_agrees_with_ogle_more_often_than_the_eros_catalogue(shared_data):
    """The claim the README makes: where OGLE-IV gives a Cepheid's period, the plugin's search (served
    bundle settings) finds it more often than the EROS-1 catalogue states it."""
    from broker.offline.commands.periods import period_config_of
    from broker.period import search_periods
    from models.data import read_eros

    independent = eros_independent_periods(shared_data)
    objects = [o for o in read_eros(shared_data / "eros1_ramp") if o.object_id in independent]
    objects = [o for o in objects if independent[o.object_id].source == "ogle_iv_f"]
    found = np.array(
        [
            r.period_days
            for r in search_periods([o.lightcurve for o in objects], period_config_of(None, 2), threads=2)
        ]
    )
    ids = [o.object_id for o in objects]
    catalogue = np.array([o.period for o in objects])
    table = agreement(ids, [o.label for o in objects], found, catalogue, independent)
    assert table["ours_vs_independent"] > table["catalogue_vs_independent"] + 0.03
    assert table["consensus"]["ours"] > 0.95
