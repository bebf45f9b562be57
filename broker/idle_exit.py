"""When a run with `run.idle_exit_s` stops: idle here, and nothing of the group's stream left for anyone.

Idle alone is not enough in a group. A member SIGKILLed mid-stream keeps its partitions until the
broker's session timeout evicts it, and the survivors learn of that at their next heartbeat: a survivor
whose own partitions ran dry would otherwise stop before the dead member's backlog reached it, and those
alerts would go unanswered. So once the idle time is up, the group's committed offsets are compared with
the ends of the partitions not held here, and the run waits up to one rebalance for them to be handed on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import KafkaException

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0  # at most one committed/watermark query per second while waiting


class GroupView(Protocol):
    def unread_elsewhere(self, assigned: set[tuple[str, int]]) -> dict[tuple[str, int], int]: ...

    def rebalance_wait_s(self) -> float: ...


class IdleExit:
    """The idle clock of one run: restarted by messages and by every new assignment."""

    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self._clock = clock
        self._since = clock()
        self._checked_at = float("-inf")
        self._reported_wait_for = -1.0

    def busy(self) -> None:
        """A batch arrived: the idle time starts again."""
        self._since = self._clock()

    def due(self, group: GroupView, assigned: set[tuple[str, int]], assigned_at: float) -> bool:
        """After an empty poll: True when the run should stop."""
        now = self._clock()
        # Idle only counts while there is something to read, and from the latest assignment: partitions
        # taken over from a dead member have not been read yet.
        if not assigned or assigned_at > self._since:
            self._since = now
            return False
        expired_at = self._since + self.idle_s
        if self.idle_s <= 0 or now <= expired_at or now - self._checked_at < CHECK_EVERY_S:
            return False
        self._checked_at = now
        try:
            unread: dict[tuple[str, int], int] | None = group.unread_elsewhere(assigned)
        except KafkaException as exc:
            log.warning("could not ask the broker what the group has left unread: %s", exc)
            unread = None
        if unread == {}:
            log.info("no messages for %.1f s and nothing unread in the group: stopping", self.idle_s)
            return True
        wait = group.rebalance_wait_s()
        left = "unknown" if unread is None else f"{sum(unread.values())} messages on {sorted(unread)}"
        if now - expired_at < wait:
            if self._reported_wait_for != expired_at:
                self._reported_wait_for = expired_at
                log.info(
                    "idle here, but %s are unread on partitions not assigned here: waiting up to %.0f s"
                    " for a rebalance to hand them on",
                    left, wait,
                )  # fmt: skip
            return False
        log.warning("stopping with %s unread: no rebalance handed them here within %.0f s", left, wait)
        return True
