"""Lazy history decoding: the policy, the trigger-only decode, and identity with the full decode.

The identity tests run a replayed stream through a real store partition and the trigger twice (full
decode, lazy decode) in the pipeline's order (decode a batch, then merge and decide alert by alert in a
partition transaction, then commit) and compare every committed light curve and every classification
input (the snapshot each annotation is computed from, so equal snapshots give equal annotations), also
across a crash and restart, a rollback, a partition restored from the changelog elsewhere and eviction.
The policy's state is stored with each object, so after a restart or a move the decisions continue as in
an uninterrupted run (no history is re-read); states without it (version 1) read each history once.
"""

from __future__ import annotations

from pathlib import Path

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


class Instance:
    """One plugin process's state for one input partition: a store partition and, when lazy, the policy
    the pipeline keeps for it (dropped on assignment, restore and rollback, as broker.pipeline does)."""

    def __init__(
        self, path: Path, lazy: bool, reconcile_every: int = 10, store_history: bool = True, **store
    ) -> None:
        self.store = LightCurveStore(StoreConfig(path=str(path), **store))
        self.part = self.store.open("alerts", 0)
        self.lazy, self.reconcile_every = lazy, reconcile_every
        self.store_history = store_history  # False: as code before state version 2 (nothing stored)
        self.policy: HistoryPolicy | None = None
        self.forget()

    def forget(self) -> None:
        self.policy = HistoryPolicy(self.part.history_state, self.reconcile_every) if self.lazy else None

    def decode(self, payload: bytes):
        """(alert, the policy's reason: None when full or when the trigger could not stand alone)."""
        if self.policy is not None:
            self.policy.last_reason = None
        alert = decode(payload, "auto", builtin_resolver(), self.policy)
        return alert, self.policy and self.policy.last_reason


def run_batches(
    inst: Instance,
    payloads: list[bytes],
    batch: int,
    offset: int = 0,
    commit: bool = True,
    changelog: dict | None = None,
):
    """The pipeline's order (decode a batch, then merge and decide alert by alert, then commit) over
    `payloads`; (snapshots, decisions). commit=False leaves the last batch's transaction open; each
    committed batch's changelog records go into `changelog` when given."""
    snapshots, decisions, txn = [], [], None
    for start in range(0, len(payloads), batch):
        decoded = [inst.decode(p) for p in payloads[start : start + batch]]
        txn = inst.part.begin()
        for alert, reason in decoded:
            state = txn.merge(alert.object_id, alert.lightcurve)
            decision = decide(state, alert.mjd, TRIGGER)
            decisions.append((alert.alert_id, decision.reason, alert.history, reason))
            if decision.classify:
                lc = txn.lightcurve(alert.object_id)
                snapshots.append((alert.object_id, lc.mjd.tolist(), lc.mag.tolist(), list(lc.band)))
                txn.mark_classified(alert.object_id, state.n_points, alert.mjd)
        if inst.policy is not None and inst.store_history:  # as Pipeline._store_history_states
            for oid in txn.merged:
                txn.set_history(oid, inst.policy.tracked(oid))
        if commit or start + batch < len(payloads):
            if changelog is not None:
                changelog.update(txn.prepare())
            txn.commit(input_offset=offset + start + len(decoded))
            if inst.policy is not None:
                inst.policy.batch_committed()
    return snapshots, decisions, txn


def run(
    tmp_path: Path, payloads: list[bytes], lazy: bool, reconcile_every: int = 10, batch: int = 25, **store
):
    """A whole stream through one instance; (instance, snapshots, decisions)."""
    name = f"{'lazy' if lazy else 'full'}-{reconcile_every}-{batch}-{len(payloads)}.sqlite"
    inst = Instance(tmp_path / name, lazy, reconcile_every, **store)
    snapshots, decisions, _ = run_batches(inst, payloads, batch)
    return inst, snapshots, decisions


def stored(inst: Instance, object_ids) -> dict:
    """The committed light curve of each object (a fresh transaction reads committed state only)."""
    txn, out = inst.part.begin(), {}
    for oid in sorted(object_ids):
        lc = txn.lightcurve(oid)
        out[oid] = (lc.mjd.tolist(), lc.mag.tolist(), lc.magerr.tolist(), list(lc.band))
    txn.rollback()
    return out


def object_ids(payloads: list[bytes]) -> set[str]:
    return {decode(p).object_id for p in payloads}


@pytest.mark.parametrize("flavour", ["ztf", "lsst"])
def test_lazy_and_full_decoding_store_the_same_light_curves_and_classify_the_same(flavour, tmp_path):
    payloads = stream(flavour)
    full, full_snaps, full_decisions = run(tmp_path, payloads, lazy=False)
    lazy, lazy_snaps, lazy_decisions = run(tmp_path, payloads, lazy=True)
    ids = {d[0] for d in full_decisions}
    oids = object_ids(payloads)
    assert stored(lazy, oids) == stored(full, oids) and len(oids) == 6
    assert lazy_snaps == full_snaps and len(full_snaps) >= 6
    assert [d[:2] for d in lazy_decisions] == [d[:2] for d in full_decisions] and len(ids) == len(payloads)
    skipped = sum(d[2] == "skipped" for d in lazy_decisions)
    assert skipped / len(payloads) > 0.6  # most alerts: the trigger only
    assert {d[2] for d in full_decisions} == {"full"}


@pytest.mark.parametrize("store_history", [True, False])
def test_lazy_after_a_crash_and_restart_matches_the_full_decode(tmp_path, store_history):
    """SIGKILL mid-batch: that batch's merges are never committed, the process restarts on the stored
    file with a fresh policy and the batch is consumed again. With the policy state stored (version 2)
    the restart decides exactly as an uninterrupted run; without it (version 1) it reads each history once."""
    payloads = stream("lsst", n_objects=4, n_points=40)
    full, _, _ = run(tmp_path, payloads, lazy=False, batch=10)
    _, _, uninterrupted = run(tmp_path, payloads, lazy=True, batch=10)
    path = tmp_path / f"store-{store_history}.sqlite"
    crashed = Instance(path, lazy=True, store_history=store_history)
    crash_at = 60  # the batch starting here is merged, then lost
    run_batches(crashed, payloads[: crash_at + 10], batch=10, commit=False)
    crashed.store.close()  # uncommitted: never written, as after a SIGKILL
    restarted = Instance(path, lazy=True, store_history=store_history)
    assert restarted.part.input_offset == crash_at
    _, decisions, _ = run_batches(restarted, payloads[crash_at:], batch=10, offset=crash_at)
    reasons = [d[3] for d in decisions]
    oids = object_ids(payloads)
    assert stored(restarted, oids) == stored(full, oids)
    assert reasons.count("known") > len(reasons) / 2 and "new_object" not in reasons
    if store_history:
        assert decisions == uninterrupted[crash_at:] and "untracked" not in reasons
    else:
        assert reasons.count("untracked") == 4


def test_a_rolled_back_batch_is_decided_again_from_scratch(tmp_path):
    """A batch whose commit fails is rolled back and consumed again by the same process: the history a
    gap read in it never reached the store, so the pipeline drops the partition's policy (the control
    keeps it, and loses the gap's points for good)."""
    payloads = stream("ztf", n_objects=1, n_points=40)
    gapped = payloads[:30] + payloads[33:]  # three alerts never arrive; the gap shows at alert 30
    (oid,) = object_ids(gapped)
    full, _, _ = run(tmp_path, gapped, lazy=False, batch=5, reconcile_every=1000)
    for forget, expected in ((True, 40), (False, 37)):
        inst = Instance(tmp_path / f"rollback-{forget}.sqlite", lazy=True, reconcile_every=1000)
        _, _, txn = run_batches(inst, gapped[:35], batch=5, commit=False)  # the gap is read in 30..34
        txn.rollback()
        if forget:
            inst.forget()
        _, decisions, _ = run_batches(inst, gapped[30:], batch=5, offset=30)
        assert len(stored(inst, [oid])[oid][0]) == expected
        if forget:
            # the stored policy state predates the gap: the re-consumed batch sees it again
            assert stored(inst, [oid]) == stored(full, [oid]) and decisions[0][3] == "gap"


def test_a_partition_restored_from_the_changelog_matches_the_full_decode(tmp_path):
    """The partition moves to another instance: it restores the first instance's changelog records into
    a new file and starts with no policy in memory; the policy state in the records lets it decide as
    the first instance would have, reading no history again."""
    payloads = stream("lsst", n_objects=4, n_points=40)
    full, _, _ = run(tmp_path, payloads, lazy=False, batch=10)
    _, _, uninterrupted = run(tmp_path, payloads, lazy=True, batch=10)
    first = Instance(tmp_path / "first.sqlite", lazy=True)
    changelog: dict[str, bytes | None] = {}
    moved_at = 80
    run_batches(first, payloads[:moved_at], batch=10, changelog=changelog)
    second = Instance(tmp_path / "second.sqlite", lazy=True)
    second.part.apply_changelog(changelog.items(), next_offset=len(changelog))
    second.forget()  # what the pipeline does on assignment
    _, decisions, _ = run_batches(second, payloads[moved_at:], batch=10, offset=moved_at)
    oids = object_ids(payloads)
    assert stored(second, oids) == stored(full, oids)
    reasons = [d[3] for d in decisions]
    assert decisions == uninterrupted[moved_at:]
    assert "untracked" not in reasons and "new_object" not in reasons and "reconcile" in reasons


def test_an_evicted_object_is_new_again_and_its_history_read(tmp_path):
    """A store bounded to 3 objects per partition evicts the least recently updated ones; an evicted
    object's next alert reads its history like a new object, so the stored curves match the full decode
    under the same bound."""
    payloads = stream("lsst", n_objects=6, n_points=30)
    full, full_snaps, _ = run(tmp_path, payloads, lazy=False, batch=10, max_objects=3)
    lazy, lazy_snaps, decisions = run(tmp_path, payloads, lazy=True, batch=10, max_objects=3)
    oids = object_ids(payloads)
    assert stored(lazy, oids) == stored(full, oids)
    assert lazy_snaps == full_snaps
    reasons = [d[3] for d in decisions]
    assert reasons.count("new_object") > 6  # objects came back after eviction
    assert lazy.part.count() == 3


def test_a_gap_in_a_ztf_stream_is_seen_from_ndethist_and_the_history_read(tmp_path):
    payloads = stream("ztf", n_objects=1, n_points=40)
    gapped = payloads[:30] + payloads[33:]  # three alerts never arrive
    full, full_snaps, _ = run(tmp_path, gapped, lazy=False, batch=5)
    lazy, lazy_snaps, decisions = run(tmp_path, gapped, lazy=True, reconcile_every=1000, batch=5)
    (oid,) = object_ids(gapped)
    assert stored(lazy, [oid]) == stored(full, [oid])
    assert len(stored(lazy, [oid])[oid][0]) == 40  # the missed points came back from the history
    assert lazy_snaps == full_snaps
    assert [d[2] for d in decisions[29:32]] == ["skipped", "read", "skipped"]  # read right after the gap
    assert decisions[30][3] == "gap"


def test_without_gap_detection_a_lazy_store_would_miss_those_points(tmp_path):
    """The control for the test above: an LSST stream has no detection count, so the same gap is only
    repaired at the next reconciliation."""
    payloads = stream("lsst", n_objects=1, n_points=40)
    gapped = payloads[:30] + payloads[33:]
    (oid,) = object_ids(gapped)
    lazy, _, _ = run(tmp_path, gapped, lazy=True, reconcile_every=1000, batch=5)
    assert len(stored(lazy, [oid])[oid][0]) == 37
    reconciled, _, _ = run(tmp_path, gapped, lazy=True, reconcile_every=5, batch=5)
    assert len(stored(reconciled, [oid])[oid][0]) == 40


def held_without_state(held: set[str]):
    """A store lookup for objects held without policy state (version-1 states)."""
    return lambda object_id: (None, None) if object_id in held else None


def test_policy_reasons():
    held: set[str] = set()
    policy = HistoryPolicy(held_without_state(held), reconcile_every=3, max_tracked=2)
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
    assert policy("a", 12) and policy.last_reason == "gap"
    policy.undo()  # that history never reached the store: the next alert is decided as this one was
    assert policy("a", 12) and policy.last_reason == "gap"
    with pytest.raises(ValueError):
        HistoryPolicy(held_without_state(held), reconcile_every=0)


def test_policy_continues_from_the_stored_state():
    """A fresh policy (after a restart or a move) takes an object's schedule from its stored state."""
    stored_states = {"a": (1, 10), "b": (None, None)}
    policy = HistoryPolicy(stored_states.get, reconcile_every=3)
    assert not policy("a", 11) and policy.last_reason == "known" and policy.tracked("a") == (2, 11)
    assert policy("a", 12) and policy.last_reason == "reconcile" and policy.tracked("a") == (0, 12)
    fresh = HistoryPolicy(stored_states.get, reconcile_every=3)
    assert fresh("a", 13) and fresh.last_reason == "gap"  # stored last n_detections: 10
    assert fresh("b", None) and fresh.last_reason == "untracked"
    assert fresh("c", None) and fresh.last_reason == "new_object" and fresh.tracked("c") == (0, None)


def test_an_object_read_earlier_in_the_batch_is_known_until_the_commit():
    held: set[str] = set()
    policy = HistoryPolicy(held_without_state(held), reconcile_every=50)
    assert policy("x", None) and policy.last_reason == "new_object"
    assert not policy("x", None)  # same batch, not merged yet: its history was just read
    assert policy("y", None)
    policy.undo()  # y's history failed to decode: y is not pending
    assert policy("y", None) and policy.last_reason == "new_object"
    policy.batch_committed()  # x and y were merged and committed ...
    held.add("x")  # ... and y evicted at that commit: the store's word counts again
    assert not policy("x", None) and policy("y", None) and policy.last_reason == "new_object"


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
