"""Independent periods for EROS-1 stars from two other LMC surveys, matched by position.

EROS-1's catalogue periods (RAMP kit: `period / div_period`) are a measurement, not the truth: where the
same star has a period from OGLE-IV or MACHO, the EROS-1 period differs for about a fifth of them, half of
those by exactly ±1 cycle/day (an alias in the EROS-1 catalogue). Measuring period recovery only against
EROS-1 counts our right answers as misses there. These tables give a second reference, so recovery can
be reported against the EROS-1 catalogue (the issue's target), against the independent period, and on the
consensus objects where both catalogues agree.

Sources, in order of preference (both in ../shared/data):
- OGLE-IV LMC fundamental-mode Cepheids (Soszyński et al. 2015): positions from `ident.dat`, periods from
  `cepFO4.dat` (σP ~ 1e-5 d);
- the MACHO variable-star catalogue (`macho_vs_catalog.csv`, 21,474 LMC variables): `period_r`.
A star is matched when the nearest source object lies within `MATCH_RADIUS_ARCSEC` (EROS-1's coordinates
are J2000: with that frame 1,251 stars match MACHO within 3", against 2 if they are read as B1950).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from broker.offline.periods import TOLERANCE  # |P / P_ref - 1| below it: the period tables' recovery

MATCH_RADIUS_ARCSEC = 3.0


@dataclass(frozen=True)
class IndependentPeriod:
    period_days: float
    source: str  # "ogle_iv_f" or "macho"
    separation_arcsec: float


def eros_positions(train_csv: Path) -> pd.DataFrame:
    """object_id (the RAMP kit's "<patch>_<star_b>", as `models.data.read_eros` names objects), ra, dec
    [deg, J2000] of every EROS-1 star."""
    table = pd.read_csv(train_csv, index_col=0)
    sign = np.where(np.signbit(table["dec_d"].to_numpy(float)), -1.0, 1.0)  # "-0" degrees is south too
    ra = 15.0 * (table["asc_d"] + table["asc_m"] / 60 + table["asc_s"] / 3600)
    dec = sign * (table["dec_d"].abs() + table["dec_m"] / 60 + table["dec_s"] / 3600)
    return pd.DataFrame({"object_id": table.index.astype(str), "ra": ra.to_numpy(), "dec": dec.to_numpy()})


def ogle_f_cepheids(ogle_dir: Path) -> pd.DataFrame:
    """ra, dec [deg] and period [d] of the OGLE-IV LMC F-mode Cepheids with a catalogue period."""
    from astropy.coordinates import Angle

    ident = pd.read_fwf(
        ogle_dir / "ident.dat",
        header=None,
        colspecs=[(0, 18), (18, 27), (27, 39), (39, 52)],
        names=["id", "mode", "ra", "dec"],
    )
    periods = pd.read_csv(ogle_dir / "cepFO4.dat", sep=r"\s+", header=None, usecols=[0, 3], names=["id", "P"])
    stars = ident.merge(periods, on="id")
    return pd.DataFrame(
        {
            "ra": Angle(stars["ra"].to_numpy(), unit="hourangle").deg,
            "dec": Angle(stars["dec"].to_numpy(), unit="deg").deg,
            "period": stars["P"].to_numpy(float),
        }
    )


def macho_variables(macho_csv: Path) -> pd.DataFrame:
    """ra, dec [deg] and red-band period [d] of the MACHO catalogue's variables."""
    table = pd.read_csv(macho_csv, usecols=["rarad", "decrad", "period_r"])
    return pd.DataFrame(
        {
            "ra": np.degrees(table["rarad"].to_numpy()),
            "dec": np.degrees(table["decrad"].to_numpy()),
            "period": table["period_r"].to_numpy(float),
        }
    )


def match(
    stars: pd.DataFrame, sources: dict[str, pd.DataFrame], radius_arcsec: float = MATCH_RADIUS_ARCSEC
) -> dict[str, IndependentPeriod]:
    """object_id -> the period of its nearest source object within `radius_arcsec`, taking the first
    source (in the dict's order) that has one. Source objects without a finite positive period are ignored."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    out: dict[str, IndependentPeriod] = {}
    here = SkyCoord(stars["ra"].to_numpy() * u.deg, stars["dec"].to_numpy() * u.deg)
    for name, table in sources.items():
        table = table[np.isfinite(table["period"]) & (table["period"] > 0)]
        if not len(table):
            continue
        there = SkyCoord(table["ra"].to_numpy() * u.deg, table["dec"].to_numpy() * u.deg)
        nearest, separation, _ = here.match_to_catalog_sky(there)
        arcsec = separation.arcsec
        for object_id, k, sep in zip(stars["object_id"], nearest, arcsec, strict=True):
            if sep < radius_arcsec and object_id not in out:
                out[object_id] = IndependentPeriod(float(table["period"].iloc[k]), name, float(sep))
    return out


def eros_independent_periods(shared_data: Path) -> dict[str, IndependentPeriod]:
    """The independent period of each EROS-1 star that has one (OGLE-IV F Cepheid first, else MACHO)."""
    stars = eros_positions(shared_data / "eros1_ramp" / "train.csv")
    return match(
        stars,
        {
            "ogle_iv_f": ogle_f_cepheids(shared_data / "ogle_lmc_cepheids"),
            "macho": macho_variables(shared_data / "macho_deepnets_vs_sample" / "macho_vs_catalog.csv"),
        },
    )


def agreement(
    object_ids: list[str],
    labels: list[str],
    found: np.ndarray,
    catalogue: np.ndarray,
    independent: dict[str, IndependentPeriod],
) -> dict:
    """Recovery of `found` periods on the objects with an independent period, against three references.

    catalogue_vs_independent: how often the two catalogues agree; ours_vs_catalogue and
    ours_vs_independent: our recovery against each; consensus: our recovery where the catalogues agree
    (the objects whose period two surveys establish). The same per source and per class."""
    keep = [i for i, o in enumerate(object_ids) if o in independent]
    if not keep:
        return {"n": 0}
    found = np.asarray(found, dtype=float)[keep]
    catalogue = np.asarray(catalogue, dtype=float)[keep]
    reference = np.array([independent[object_ids[i]].period_days for i in keep])
    source = np.array([independent[object_ids[i]].source for i in keep])
    label = np.array([labels[i] for i in keep])

    def close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.abs(a / b - 1) < TOLERANCE

    ours_ind, ours_cat, cat_ind = (
        close(found, reference),
        close(found, catalogue),
        close(catalogue, reference),
    )

    def table(mask: np.ndarray) -> dict:
        consensus = mask & cat_ind
        return {
            "n": int(mask.sum()),
            "catalogue_vs_independent": float(cat_ind[mask].mean()),
            "ours_vs_catalogue": float(ours_cat[mask].mean()),
            "ours_vs_independent": float(ours_ind[mask].mean()),
            "consensus": {
                "n": int(consensus.sum()),
                "ours": float(ours_ind[consensus].mean()) if consensus.any() else float("nan"),
            },
        }

    return {
        **table(np.ones(len(keep), bool)),
        "outcomes": {
            "all_agree": int((ours_ind & cat_ind).sum()),
            "ours_and_independent_not_catalogue": int((ours_ind & ~cat_ind).sum()),
            "ours_and_catalogue_not_independent": int((ours_cat & ~ours_ind).sum()),
            "catalogues_not_ours": int((cat_ind & ~ours_ind).sum()),
            "none": int((~ours_ind & ~ours_cat & ~cat_ind).sum()),
        },
        "by_source": {s: table(source == s) for s in sorted(set(source))},
        "by_class": {c: table(label == c) for c in sorted(set(label))},
        "match_radius_arcsec": MATCH_RADIUS_ARCSEC,
    }
