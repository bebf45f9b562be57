"""librdkafka's own log lines and errors, routed through Python logging and rate-limited.

During a broker outage librdkafka reports every failed connection attempt (hundreds of lines a minute).
Here each facility (CONNECT, FAIL, ...) logs at most one line per `interval_s`, with a count of the lines
it swallowed, and the outage itself is one clear line when it starts ("Kafka brokers unreachable since
...") and one when it ends. Connectivity is reported through a callback (the pipeline's gauge).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from confluent_kafka import KafkaError

LOGGER_NAME = "broker.librdkafka"
# Errors that mean "cannot talk to the brokers" (not a problem with one request).
UNREACHABLE = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}

log = logging.getLogger(__name__)


class RateLimit(logging.Filter):
    """At most one record per key (librdkafka facility) per interval; the next one says how many were cut."""

    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._cut: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.args[0]) if isinstance(record.args, tuple) and record.args else record.getMessage()
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._cut[key] = self._cut.get(key, 0) + 1
            return False
        self._last[key] = now
        cut = self._cut.pop(key, 0)
        if cut:
            record.msg = f"{record.msg} (+{cut} similar in the last {self.interval_s:g} s)"
        return True


class KafkaClientLog:
    """Shared by the clients of one KafkaIO: `logger` and `error_cb` go into their configs."""

    def __init__(
        self,
        on_connectivity: Callable[[bool], None] | None = None,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logging.getLogger(LOGGER_NAME)
        self._limit = RateLimit(interval_s, clock)
        if not any(isinstance(f, RateLimit) for f in self.logger.filters):
            self.logger.addFilter(self._limit)
        self._errors = RateLimit(interval_s, clock)
        self._on_connectivity = on_connectivity
        self._clock = clock
        self.up = True
        self._down_since: float | None = None

    def client_config(self) -> dict:
        return {"logger": self.logger, "error_cb": self.error}

    def error(self, err: KafkaError) -> None:
        """librdkafka's error callback: connectivity errors flip the state, others are logged (limited)."""
        if err.code() in UNREACHABLE:
            self.mark(False, err.str())
            return
        record = logging.LogRecord(
            LOGGER_NAME, logging.WARNING, __file__, 0, "%s: %s", (err.name(), err.str()), None
        )
        if self._errors.filter(record):
            self.logger.handle(record)

    def mark(self, up: bool, detail: str = "") -> None:
        """Record whether the brokers answer; log only the transitions."""
        if up == self.up:
            return
        self.up = up
        if up:
            lasted = self._clock() - (self._clock() if self._down_since is None else self._down_since)
            log.warning("Kafka brokers reachable again after %.0f s", lasted)
            self._down_since = None
        else:
            self._down_since = self._clock()
            since = datetime.now(UTC).isoformat(timespec="seconds")
            log.error("Kafka brokers unreachable since %s (%s); retrying", since, detail)
        if self._on_connectivity:
            self._on_connectivity(up)

    def stats(self, stats: dict) -> None:
        """From librdkafka's statistics: up when any broker connection is UP."""
        states = [b.get("state") for b in stats.get("brokers", {}).values()]
        if states:
            self.mark("UP" in states, "no broker connection is up")
