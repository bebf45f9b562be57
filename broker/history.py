"""When an alert's history must be decoded: the policy behind lazy decoding (broker/codecs/lazy.py).

The store holds every point of the objects this instance follows, so the history an alert repeats is
redundant unless something was missed. The history is read when
  new_object  the store does not hold the object (first alert here, or evicted);
  untracked   the store holds it without policy state (a version-1 state, written before the policy state
              was stored, or by a decode.history = "full" run): one reconciliation, since nothing says what
              happened in between;
  gap         ZTF's candidate.ndethist grew by more than one since the last alert seen here, so
              detections were missed (LSST's triggering diaSource carries no such count);
  reconcile   `reconcile_every` alerts have passed since the object's history was last read.
Otherwise it is skipped (`known`).

The policy's state per object, (alerts since its history was last read, last n_detections), lives in two
places: an in-process tracker, updated as each alert is decided, and the stored object (broker.state_codec,
also in its changelog record), written from the tracker when the batch merges (`tracked()`). The store
is consistent with the committed offsets, so after a restart, a restore from the changelog or a partition
move, the stored state is exactly the tracker's as of the last committed alert, and an object the store
holds continues its schedule. `lookup(object_id)` sees committed state: None when the store lacks the
object, else its stored (since, last_n) (None, None for a state without them). A batch is decoded
before it merges, so an object whose history was read earlier in the same batch counts as held until
`batch_committed()`. The tracker is an LRU of at most `max_tracked` objects; one it forgot falls back to
its stored state. The pipeline keeps one policy per store partition and drops it when that partition is
assigned, restored, revoked or rolled back, so what it tracks never outlives the state it describes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

READ_REASONS = ("new_object", "untracked", "gap", "reconcile", "trigger_unusable")
SKIP_REASON = "known"
HISTORY_REASONS = (*READ_REASONS, SKIP_REASON)
# (alerts since the history was last read, last n_detections seen); either may be unknown (None)
HistoryState = tuple[int | None, int | None]
# object_id -> None (the store does not hold it) or its stored HistoryState
Lookup = Callable[[str], HistoryState | None]


class HistoryPolicy:
    """`policy(object_id, n_detections) -> bool`: decode this alert's history? `last_reason` says why."""

    def __init__(self, lookup: Lookup, reconcile_every: int, max_tracked: int = 1_000_000) -> None:
        if reconcile_every < 1:
            raise ValueError(f"reconcile_every must be >= 1, got {reconcile_every}")
        self._lookup = lookup
        self.reconcile_every = reconcile_every
        self.max_tracked = max_tracked
        # object_id -> (alerts since its history was last read, last n_detections seen)
        self._tracked: OrderedDict[str, tuple[int, int | None]] = OrderedDict()
        # objects whose history this batch read while the store lacks them: known until the batch commits
        self._pending: set[str] = set()
        self.last_reason: str | None = None
        self._before: tuple[str, tuple[int, int | None] | None, bool] | None = None  # for undo()

    def __call__(self, object_id: str, n_detections: int | None) -> bool:
        reason, since = self._reason(object_id, n_detections)
        self.last_reason = reason
        self._before = (object_id, self._tracked.get(object_id), object_id in self._pending)
        if reason == "new_object":
            self._pending.add(object_id)
        self._tracked[object_id] = (0 if reason != SKIP_REASON else since + 1, n_detections)
        self._tracked.move_to_end(object_id)
        while len(self._tracked) > self.max_tracked:
            self._tracked.popitem(last=False)
        return reason != SKIP_REASON

    def undo(self) -> None:
        """Forget the last decision (since `last_reason` was set): the caller could not use what it
        decoded (the history failed to decode), so the next alert of that object is decided as this one."""
        if self.last_reason is None or self._before is None:
            return
        object_id, before, was_pending = self._before
        if not was_pending:
            self._pending.discard(object_id)
        if before is None:
            self._tracked.pop(object_id, None)
        else:
            self._tracked[object_id] = before
        self._before, self.last_reason = None, None

    def tracked(self, object_id: str) -> HistoryState | None:
        """The object's state after the alerts decided so far (None: not tracked), to store with it."""
        return self._tracked.get(object_id)

    def batch_committed(self) -> None:
        """The batch's merges are committed: the store itself now says which objects it holds."""
        self._pending.clear()

    def _reason(self, object_id: str, n_detections: int | None) -> tuple[str, int]:
        """(reason, alerts since the last read before this one)."""
        seen = self._tracked.get(object_id)
        if object_id not in self._pending:
            stored = self._lookup(object_id)
            if stored is None:
                return "new_object", 0
            seen = seen or stored  # not tracked here: continue from the committed state
        if seen is None or seen[0] is None:
            return "untracked", 0
        since, last_n = seen
        if n_detections is not None and last_n is not None and n_detections > last_n + 1:
            return "gap", since
        if since + 1 >= self.reconcile_every:
            return "reconcile", since
        return SKIP_REASON, since
