"""Lazy history decoding: the policy, the trigger-only decode, and identity with the full decode.

The identity tests run a replayed stream through the real store and trigger twice (full decode, lazy
decode) in the pipeline's order (decode a batch, then merge and decide alert by alert) and compare
every stored light curve and every classification input (the snapshot each annotation is computed
from, so equal snapshots give equal annotations).
"""

from __future__ import annotations

import numpy as np
import pytest

from broker.codecs import build_lsst_alert, build_ztf_alert, decode, encode_lsst, encode_ztf, point_id
from broker.codecs.lazy import decode_trigger
from broker.codecs.lsst import builtin_resolver
from broker.config import StoreConfig, TriggerConfig
from broker.history import HistoryPolicy
from broker.store import LightCurveStore
from broker.trigger import decide
from models.lightcurve import LightCurve
from tests.fixtures.alert_samples import all_messages

TRIGGER = TriggerConfig(min_points=20, min_new_fraction=0.1)


def lightcurve(n: int, bands: tuple[str, ...], seed: int) -> LightCurve:
    rng = np.random.default_rng(seed)
    mjd = np.sort(60000.0 + rng.uniform(0.0, 120.0, n))
    mag = 17.0 + 0.5 * np.sin(2 * np.pi * mjd / 0.37) + rng.normal(0.0, 0.02, n)
    return LightCurve.from_arrays(mjd, mag, rng.uniform(0.01, 0.05, n), rng.choice(list(bands), n))


def stream(flavour: str, n_objects: int = 6, n_points: int = 45) -> list[bytes]:
    """Alerts of several objects, interleaved in time order, each with its survey's history window."""
    alerts = []
    for k in range(n_objects):
        oid = f"ZTF24obj{k:04d}" if flavour == "ztf" else str(9000 + k)
        lc = lightcurve(n_points, ("g", "r") if flavour == "ztf" else ("g", "r", "i"), seed=k)
        for i in range(n_points):
            if flavour == "ztf":
                payload = encode_ztf(build_ztf_alert(oid, point_id(oid, i), lc, i, history_days=30.0))
            else:
                payload = encode_lsst(build_lsst_alert(oid, point_id(oid, i), lc, i, history_days=365.0))
            alerts.append((float(lc.mjd[i]), payload))
    return [payload for _, payload in sorted(alerts, key=lambda a: a[0])]


def run(payloads: list[bytes], lazy: bool, reconcile_every: int = 10, batch: int = 25):
    """The pipeline's decode -> merge -> trigger order over `payloads`; (store, snapshots, decisions)."""
    store = LightCurveStore(StoreConfig(path=":memory:"))
    policy = HistoryPolicy(store.contains, reconcile_every) if lazy else None
    snapshots, decisions = [], []
    for start in range(0, len(payloads), batch):
        alerts = [decode(p, "auto", builtin_resolver(), policy) for p in payloads[start : start + batch]]
        for alert in alerts:
            state = store.merge(alert.object_id, alert.lightcurve)
            decision = decide(state, alert.mjd, TRIGGER)
            decisions.append((alert.alert_id, decision.reason, alert.history))
            if decision.classify:
                lc = store.lightcurve(alert.object_id)
                snapshots.append((alert.object_id, lc.mjd.tolist(), lc.mag.tolist(), list(lc.band)))
                store.mark_classified(alert.object_id, state.n_points, alert.mjd)
        store.commit()
    return store, snapshots, decisions


def stored(store: LightCurveStore, object_ids) -> dict:
    out = {}
    for oid in sorted(object_ids):
        lc = store.lightcurve(oid)
        out[oid] = (lc.mjd.tolist(), lc.mag.tolist(), lc.magerr.tolist(), list(lc.band))
    return out


@pytest.mark.parametrize("flavour", ["ztf", "lsst"])
def test_lazy_and_full_decoding_store_the_same_light_curves_and_classify_the_same(flavour):
    payloads = stream(flavour)
    full_store, full_snaps, full_decisions = run(payloads, lazy=False)
    lazy_store, lazy_snaps, lazy_decisions = run(payloads, lazy=True)
    ids = {d[0] for d in full_decisions}
    object_ids = {decode(p).object_id for p in payloads[:50]}
    assert stored(lazy_store, object_ids) == stored(full_store, object_ids)
    assert lazy_snaps == full_snaps and len(full_snaps) >= 6
    assert [d[:2] for d in lazy_decisions] == [d[:2] for d in full_decisions] and len(ids) == len(payloads)
    skipped = sum(d[2] == "skipped" for d in lazy_decisions)
    assert skipped / len(payloads) > 0.6  # most alerts: the trigger only
    assert {d[2] for d in full_decisions} == {"full"}


def test_lazy_after_a_crash_and_restart_matches_the_full_decode(tmp_path):
    """SIGKILL mid-batch: that batch's merges are never committed, the process restarts on the stored
    file with a fresh policy (nothing tracked) and the batch is consumed again."""
    payloads = stream("lsst", n_objects=4, n_points=40)
    full_store, _, _ = run(payloads, lazy=False, batch=10)
    path = tmp_path / "store.sqlite"
    store = LightCurveStore(StoreConfig(path=str(path)))
    policy = HistoryPolicy(store.contains, 10)
    crash_at = 60  # the batch starting here is merged, then lost
    for start in range(0, crash_at + 10, 10):
        alerts = [decode(p, "auto", builtin_resolver(), policy) for p in payloads[start : start + 10]]
        for alert in alerts:
            store.merge(alert.object_id, alert.lightcurve)
        if start < crash_at:
            store.commit()
    store.close()  # uncommitted: rolled back, as after a SIGKILL
    restarted = LightCurveStore(StoreConfig(path=str(path)))
    policy = HistoryPolicy(restarted.contains, 10)
    reasons = []
    for start in range(crash_at, len(payloads), 10):
        for p in payloads[start : start + 10]:
            alert = decode(p, "auto", builtin_resolver(), policy)
            reasons.append(policy.last_reason)
            restarted.merge(alert.object_id, alert.lightcurve)
        restarted.commit()
    object_ids = {decode(p).object_id for p in payloads}
    assert stored(restarted, object_ids) == stored(full_store, object_ids)
    assert "untracked" in reasons and reasons.count("known") > len(reasons) / 2


def test_a_gap_in_a_ztf_stream_is_seen_from_ndethist_and_the_history_read():
    payloads = stream("ztf", n_objects=1, n_points=40)
    gapped = payloads[:30] + payloads[33:]  # three alerts never arrive
    full_store, full_snaps, _ = run(gapped, lazy=False, batch=5)
    lazy_store, lazy_snaps, decisions = run(gapped, lazy=True, reconcile_every=1000, batch=5)
    (oid,) = {decode(p).object_id for p in gapped}
    assert stored(lazy_store, [oid]) == stored(full_store, [oid])
    assert len(lazy_store.lightcurve(oid)) == 40  # the missed points came back from the history
    assert lazy_snaps == full_snaps
    assert [d[2] for d in decisions[29:32]] == ["skipped", "read", "skipped"]  # read right after the gap


def test_without_gap_detection_a_lazy_store_would_miss_those_points():
    """The control for the test above: an LSST stream has no detection count, so the same gap is only
    repaired at the next reconciliation."""
    payloads = stream("lsst", n_objects=1, n_points=40)
    gapped = payloads[:30] + payloads[33:]
    lazy_store, _, _ = run(gapped, lazy=True, reconcile_every=1000, batch=5)
    (oid,) = {decode(p).object_id for p in gapped}
    assert len(lazy_store.lightcurve(oid)) == 37
    reconciled, _, _ = run(gapped, lazy=True, reconcile_every=5, batch=5)
    assert len(reconciled.lightcurve(oid)) == 40


def test_policy_reasons():
    held: set[str] = set()
    policy = HistoryPolicy(held.__contains__, reconcile_every=3, max_tracked=2)
    assert policy("a", 1) and policy.last_reason == "new_object"
    held.add("a")
    assert not policy("a", 2) and policy.last_reason == "known"
    assert not policy("a", 3)
    assert policy("a", 4) and policy.last_reason == "reconcile"  # every 3rd alert after a read
    assert not policy("a", 5) and not policy("a", 6)
    assert policy("a", 7) and policy.last_reason == "reconcile"
    assert policy("a", 9) and policy.last_reason == "gap"
    held |= {"b", "c"}
    assert policy("b", None) and policy.last_reason == "untracked"
    assert policy("c", None) and policy.last_reason == "untracked"  # the tracker keeps 2: "a" forgotten
    assert policy("a", 10) and policy.last_reason == "untracked"
    with pytest.raises(ValueError):
        HistoryPolicy(held.__contains__, reconcile_every=0)


def test_the_trigger_alone_matches_the_full_decode_of_real_samples_or_declines():
    for name, payload in all_messages().items():
        trigger = decode_trigger(payload, "auto", builtin_resolver())
        if trigger is None:  # the trigger is unusable alone, or the object id lies beyond it
            continue
        full = decode(payload)
        t = trigger.alert
        assert (t.object_id, t.alert_id, t.mjd, t.survey) == (
            full.object_id,
            full.alert_id,
            full.mjd,
            full.survey,
        )
        assert t.n_points == 1 and t.lightcurve.mjd[0] in full.lightcurve.mjd, name
        i = int(np.flatnonzero(full.lightcurve.mjd == t.lightcurve.mjd[0])[0])
        assert t.lightcurve.mag[0] == full.lightcurve.mag[i], name
    ztf = all_messages()["ztf_fp_hists/2454460970015010006.avro"]
    assert decode_trigger(ztf, "auto", builtin_resolver()).n_detections == 17  # candidate.ndethist
