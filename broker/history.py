"""When an alert's history must be decoded: the policy behind lazy decoding (broker/codecs/lazy.py).

The store holds every point of the objects this instance follows, so the history an alert repeats is
redundant unless something was missed. The history is read when
  new_object  the store does not hold the object (first alert here, evicted, or moved from elsewhere);
  untracked   the store holds it but this process has not followed it yet (after a restart, or after the
              tracker forgot it): one reconciliation, since nothing says what happened in between;
  gap         ZTF's candidate.ndethist grew by more than one since the last alert seen here, so
              detections were missed (LSST's triggering diaSource carries no such count);
  reconcile   `reconcile_every` alerts have passed since the object's history was last read.
Otherwise it is skipped (`known`). Needs only `contains(object_id)` of the store, which sees committed
state; a batch is decoded before it merges, so an object whose history was read earlier in the same batch
counts as held until `batch_committed()`. The tracker is an LRU
of at most `max_tracked` objects; forgetting one only costs one extra history read. The pipeline keeps
one policy per store partition and drops it when that partition is assigned, restored, revoked or rolled
back, so what it tracks never outlives the state it describes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

READ_REASONS = ("new_object", "untracked", "gap", "reconcile", "trigger_unusable")
SKIP_REASON = "known"
HISTORY_REASONS = (*READ_REASONS, SKIP_REASON)


class HistoryPolicy:
    """`policy(object_id, n_detections) -> bool`: decode this alert's history? `last_reason` says why."""

    def __init__(
        self, contains: Callable[[str], bool], reconcile_every: int, max_tracked: int = 1_000_000
    ) -> None:
        if reconcile_every < 1:
            raise ValueError(f"reconcile_every must be >= 1, got {reconcile_every}")
        self._contains = contains
        self.reconcile_every = reconcile_every
        self.max_tracked = max_tracked
        # object_id -> (alerts since its history was last read, last n_detections seen)
        self._tracked: OrderedDict[str, tuple[int, int | None]] = OrderedDict()
        # objects whose history this batch read while the store lacks them: known until the batch commits
        self._pending: set[str] = set()
        self.last_reason: str | None = None
        self._before: tuple[str, tuple[int, int | None] | None, bool] | None = None  # for undo()

    def __call__(self, object_id: str, n_detections: int | None) -> bool:
        reason = self._reason(object_id, n_detections)
        self.last_reason = reason
        self._before = (object_id, self._tracked.get(object_id), object_id in self._pending)
        if reason == "new_object":
            self._pending.add(object_id)
        since = 0 if reason != SKIP_REASON else self._tracked[object_id][0] + 1
        self._tracked[object_id] = (since, n_detections)
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

    def batch_committed(self) -> None:
        """The batch's merges are committed: the store itself now says which objects it holds."""
        self._pending.clear()

    def _reason(self, object_id: str, n_detections: int | None) -> str:
        if object_id not in self._pending and not self._contains(object_id):
            return "new_object"
        seen = self._tracked.get(object_id)
        if seen is None:
            return "untracked"
        since, last_n = seen
        if n_detections is not None and last_n is not None and n_detections > last_n + 1:
            return "gap"
        if since + 1 >= self.reconcile_every:
            return "reconcile"
        return SKIP_REASON
