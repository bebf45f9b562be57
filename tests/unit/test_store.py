import numpy as np
import pytest

from broker.config import StoreConfig
from broker.store import LightCurveStore
from models.lightcurve import LightCurve


def lc(mjd, band="g"):
    mjd = np.asarray(mjd, float)
    return LightCurve.from_arrays(mjd, 15 + np.sin(mjd), np.full(len(mjd), 0.05), band)


@pytest.fixture
def store(tmp_path):
    s = LightCurveStore(StoreConfig(path=str(tmp_path / "lc.sqlite")))
    yield s
    s.close()


def test_merge_dedupes_repeated_history(store):
    store.merge("a", lc([1.0, 2.0, 3.0]))
    state = store.merge("a", lc([2.0, 3.0, 4.0]))  # the next alert repeats part of its history
    assert state.n_points == 4
    got = store.lightcurve("a")
    np.testing.assert_allclose(got.mjd, [1, 2, 3, 4])
    # the same time in another band is another point
    assert store.merge("a", lc([2.0], band="r")).n_points == 5


def test_float_noise_in_time_does_not_duplicate(store):
    store.merge("a", lc([60000.123456789]))
    assert store.merge("a", lc([60000.123456789 + 1e-10])).n_points == 1


def test_rollback_restores_the_committed_state(store):
    store.merge("a", lc([1.0, 2.0]))
    store.commit()
    store.merge("a", lc([3.0]))
    store.mark_classified("a", 3, 3.0)
    store.rollback()
    state = store.state("a")
    assert state.n_points == 2 and state.classified_n_points == 0
    assert store.state("b") is None


def test_state_survives_reopen(tmp_path):
    cfg = StoreConfig(path=str(tmp_path / "lc.sqlite"))
    s = LightCurveStore(cfg)
    s.merge("a", lc([1.0, 2.0]))
    s.mark_classified("a", 2, 2.0)
    s.commit()
    s.close()
    s = LightCurveStore(cfg)
    st = s.state("a")
    assert (st.n_points, st.classified_n_points, st.classified_mjd, st.n_classifications) == (2, 2, 2.0, 1)
    s.close()


def test_bounds_points_and_objects(tmp_path):
    s = LightCurveStore(StoreConfig(path=str(tmp_path / "lc.sqlite"), max_objects=2, max_points_per_object=3))
    s.merge("a", lc([1.0, 2.0, 3.0, 4.0, 5.0]))
    np.testing.assert_allclose(s.lightcurve("a").mjd, [3, 4, 5])  # oldest points dropped
    s.merge("b", lc([1.0]))
    s.merge("c", lc([1.0]))
    assert s.evict() == 1
    assert s.state("a") is None  # least recently updated
    assert s.count() == 2
    s.close()


def test_idle_objects_are_evicted(tmp_path):
    s = LightCurveStore(StoreConfig(path=str(tmp_path / "lc.sqlite"), max_idle_days=10))
    s.merge("old", lc([1.0]))
    s.merge("new", lc([100.0]))
    assert s.evict() == 1
    assert s.state("old") is None and s.state("new") is not None
    s.close()


def test_object_count_follows_merges_evictions_rollbacks_and_reopens(tmp_path):
    """count() is kept up to date, not queried; it must always equal the rows in the table."""
    cfg = StoreConfig(path=str(tmp_path / "lc.sqlite"), max_objects=3, max_idle_days=50)
    s = LightCurveStore(cfg)

    def rows() -> int:
        return s._count_rows()

    s.merge("a", lc([1.0]))
    s.merge("a", lc([2.0]))  # an update, not a new object
    s.merge("b", lc([100.0]))
    assert s.count() == rows() == 2
    s.commit()
    s.merge("c", lc([101.0]))
    s.merge("d", lc([102.0]))
    assert s.count() == rows() == 4
    s.rollback()
    assert s.count() == rows() == 2
    for name in "cdef":
        s.merge(name, lc([103.0]))
    assert s.evict() == 3  # "a" is idle, then the two least recently updated of the rest
    assert s.count() == rows() == 3
    s.commit()
    s.close()
    s = LightCurveStore(cfg)
    assert s.count() == rows() == 3
    s.close()
