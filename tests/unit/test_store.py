import numpy as np
import pytest

from broker.config import StoreConfig
from broker.state_codec import StoredObject, decode_state, encode_state
from broker.store import NO_OFFSET, LightCurveStore, StorePartition
from models.lightcurve import LightCurve


def lc(mjd, band="g"):
    mjd = np.asarray(mjd, float)
    return LightCurve.from_arrays(mjd, 15 + np.sin(mjd), np.full(len(mjd), 0.05), band)


def open_part(tmp_path, **cfg) -> StorePartition:
    return StorePartition(tmp_path / "p.sqlite", StoreConfig(path=str(tmp_path / "s.sqlite"), **cfg))


@pytest.fixture
def part(tmp_path):
    p = open_part(tmp_path)
    yield p
    p.close()


def test_merge_dedupes_repeated_history(part):
    txn = part.begin()
    txn.merge("a", lc([1.0, 2.0, 3.0]))
    state = txn.merge("a", lc([2.0, 3.0, 4.0]))  # the next alert repeats part of its history
    assert state.n_points == 4
    np.testing.assert_allclose(txn.lightcurve("a").mjd, [1, 2, 3, 4])
    # the same time in another band is another point
    assert txn.merge("a", lc([2.0], band="r")).n_points == 5
    txn.commit(input_offset=3)
    got = part.begin().lightcurve("a")
    assert list(got.band) == ["g", "g", "r", "g", "g"]


def test_late_points_below_the_watermark_are_kept_and_sorted(part):
    txn = part.begin()
    txn.merge("a", lc([1.0, 5.0]))
    assert txn.merge("a", lc([3.0, 5.0])).n_points == 3  # 3.0 is late (below the watermark) but new
    np.testing.assert_allclose(txn.lightcurve("a").mjd, [1, 3, 5])


def test_float_noise_in_time_does_not_duplicate(part):
    txn = part.begin()
    txn.merge("a", lc([60000.123456789]))
    assert txn.merge("a", lc([60000.123456789 + 1e-10])).n_points == 1


def test_rollback_restores_the_committed_state(part):
    txn = part.begin()
    txn.merge("a", lc([1.0, 2.0]))
    txn.commit(input_offset=1)
    txn = part.begin()
    txn.merge("a", lc([3.0]))
    txn.mark_classified("a", 3, 3.0)
    txn.merge("b", lc([3.0]))
    txn.prepare()  # even after the rows went to SQLite
    txn.rollback()
    txn = part.begin()
    state = txn.state("a")
    assert state.n_points == 2 and state.classified_n_points == 0
    assert txn.state("b") is None and not part.contains("b")
    assert part.count() == 1 and part.input_offset == 1


def test_state_and_offsets_survive_reopen(tmp_path):
    p = open_part(tmp_path)
    assert (p.input_offset, p.changelog_offset) == (NO_OFFSET, NO_OFFSET)
    txn = p.begin()
    txn.merge("a", lc([1.0, 2.0]))
    txn.mark_classified("a", 2, 2.0)
    txn.commit(input_offset=10, changelog_offset=4)
    p.close()
    p = open_part(tmp_path)
    st = p.begin().state("a")
    assert (st.n_points, st.classified_n_points, st.classified_mjd, st.n_classifications) == (2, 2, 2.0, 1)
    assert (p.input_offset, p.changelog_offset) == (10, 4)
    assert p.contains("a") and not p.contains("zz")
    p.close()


def test_bounds_points_and_objects_with_tombstones(tmp_path):
    p = open_part(tmp_path, max_objects=2, max_points_per_object=3)
    txn = p.begin()
    txn.merge("a", lc([1.0, 2.0, 3.0, 4.0, 5.0]))
    np.testing.assert_allclose(txn.lightcurve("a").mjd, [3, 4, 5])  # oldest points dropped
    txn.commit()
    txn = p.begin()
    txn.merge("b", lc([1.0]))
    txn.merge("c", lc([1.0]))
    records = txn.prepare()
    assert txn.evicted == ["a"]  # least recently updated
    assert ("a", None) in records and {k for k, v in records if v is not None} == {"b", "c"}
    txn.commit()
    assert p.begin().state("a") is None and p.count() == 2
    p.close()


def test_idle_objects_are_evicted(tmp_path):
    p = open_part(tmp_path, max_idle_days=10)
    txn = p.begin()
    txn.merge("old", lc([1.0]))
    txn.merge("new", lc([100.0]))
    txn.prepare()
    assert txn.evicted == ["old"]
    txn.commit()
    assert p.begin().state("old") is None and p.begin().state("new") is not None
    p.close()


def test_object_count_follows_merges_evictions_rollbacks_and_reopens(tmp_path):
    """count() is kept up to date, not queried; it must always equal the rows in the table."""
    p = open_part(tmp_path, max_objects=3, max_idle_days=50)
    txn = p.begin()
    txn.merge("a", lc([51.0]))
    txn.merge("a", lc([52.0]))  # an update, not a new object
    txn.merge("b", lc([100.0]))
    assert txn.count() == 2
    txn.commit()
    assert p.count() == p._count_rows() == 2
    txn = p.begin()
    txn.merge("c", lc([101.0]))
    txn.merge("d", lc([102.0]))
    assert txn.count() == 4
    txn.rollback()
    assert p.count() == p._count_rows() == 2
    txn = p.begin()
    for name in "cdef":
        txn.merge(name, lc([103.0]))
    txn.prepare()
    assert len(txn.evicted) == 3  # "a" is idle, then the two least recently updated of the rest
    txn.commit()
    assert p.count() == p._count_rows() == 3
    p.close()
    p = open_part(tmp_path, max_objects=3)
    assert p.count() == p._count_rows() == 3
    p.close()


def test_only_changed_objects_go_to_the_changelog(part):
    txn = part.begin()
    txn.merge("a", lc([1.0, 2.0]))
    txn.merge("b", lc([1.0]))
    txn.commit()
    txn = part.begin()
    txn.merge("a", lc([1.0, 2.0]))  # nothing new
    txn.merge("b", lc([2.0]))
    assert [k for k, _ in txn.prepare()] == ["b"]
    txn.commit()


def test_changelog_records_restore_an_identical_partition(tmp_path):
    src = open_part(tmp_path)
    txn = src.begin()
    txn.merge("a", lc([1.0, 2.0, 3.0]))
    txn.merge("a", lc([2.5], band="r"))
    txn.mark_classified("a", 4, 3.0)
    txn.merge("b", lc([5.0]))
    log = txn.prepare()
    txn.commit()
    txn = src.begin()
    txn.merge("c", lc([6.0]))
    log += [*txn.prepare(), ("b", None)]  # b evicted later: a tombstone
    txn.commit()
    dst = StorePartition(tmp_path / "restored.sqlite", src.config)
    assert dst.apply_changelog(log, next_offset=len(log)) == len(log)
    assert dst.changelog_offset == len(log) and dst.count() == 2
    for oid in ("a", "c"):
        a, b = src.begin().lightcurve(oid), dst.begin().lightcurve(oid)
        np.testing.assert_array_equal(a.mjd, b.mjd)
        np.testing.assert_array_equal(a.mag, b.mag)
        assert list(a.band) == list(b.band)
        assert src.begin().state(oid) == dst.begin().state(oid)
    assert not dst.contains("b")
    src.close()
    dst.close()


def test_state_codec_round_trips_and_rejects_other_versions():
    obj, _ = StoredObject.empty().merge(lc([1.0, 2.0, 3.0]), 100)
    obj = obj.classified(3, 3.0)
    data = encode_state(obj)
    assert len(data) < 40 + 25 * 3
    back = decode_state(data)
    np.testing.assert_array_equal(back.keys, obj.keys)
    assert (back.classified_n_points, back.classified_mjd, back.n_classifications) == (3, 3.0, 1)
    with pytest.raises(ValueError, match="version 9"):
        decode_state(data[:2] + bytes([9]) + data[3:])
    with pytest.raises(ValueError, match="not a varstream object state"):
        decode_state(b"garbage-bytes-here-and-more-more")


def test_state_codec_carries_the_history_policy_state_and_still_reads_version_1():
    obj, _ = StoredObject.empty().merge(lc([1.0, 2.0, 3.0]), 100)
    back = decode_state(encode_state(obj.with_history(7, 123)))
    assert (back.alerts_since_history, back.last_n_detections) == (7, 123)
    merged, _ = back.merge(lc([4.0]), 100)  # a merge keeps it
    assert (merged.alerts_since_history, merged.last_n_detections) == (7, 123)
    unknown = decode_state(encode_state(obj.with_history(0, None)))
    assert (unknown.alerts_since_history, unknown.last_n_detections) == (0, None)
    # version 1: the same layout without the 8 history bytes after the fixed header
    v2 = encode_state(obj.classified(3, 3.0).with_history(7, 123))
    v1 = v2[:2] + bytes([1]) + v2[3:25] + v2[33:]  # the fixed header is 25 bytes
    old = decode_state(v1)
    assert (old.alerts_since_history, old.last_n_detections) == (None, None)
    np.testing.assert_array_equal(old.mjd, obj.mjd)
    assert (old.classified_n_points, old.bands) == (3, ("g",))


def test_history_state_is_committed_with_the_batch(part):
    assert part.history_state("a") is None
    txn = part.begin()
    txn.merge("a", lc([1.0]))
    assert part.history_state("a") is None  # not committed yet
    txn.set_history("a", (0, 5))
    assert [k for k, _ in txn.prepare()] == ["a"]
    txn.commit(input_offset=1)
    txn = part.begin()
    txn.merge("a", lc([1.0]))  # nothing new, only the policy state changes: still a changelog record
    txn.set_history("a", (1, 6))
    assert [k for k, _ in txn.prepare()] == ["a"]
    txn.rollback()
    assert part.history_state("a") == (0, 5)
    txn = part.begin()
    txn.merge("a", lc([1.0]))
    txn.set_history("a", (0, 5))  # unchanged: a touch, no record
    assert txn.prepare() == []
    txn.commit(input_offset=2)
    reopened = StorePartition(part.path, part.config)
    assert reopened.history_state("a") == (0, 5)
    reopened.close()


def test_store_opens_one_file_per_partition(tmp_path):
    store = LightCurveStore(StoreConfig(path=str(tmp_path / "lc.sqlite")))
    p0, p1 = store.open("alerts", 0), store.open("alerts", 1)
    assert p0.path.name == "lc.alerts.0.sqlite" and p1.path.name == "lc.alerts.1.sqlite"
    txn = p1.begin()
    txn.merge("x", lc([1.0]))
    txn.commit()
    assert store.contains("x") and not p0.contains("x") and store.count() == 1
    assert store.size_bytes() > 0
    store.close_partition("alerts", 1)
    assert not store.contains("x")
    store.close()
