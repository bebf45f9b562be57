"""Liveness and readiness of one plugin process, answered at /healthz and /readyz next to /metrics.

A live HTTP thread says nothing about a stuck consumer loop, so liveness is a heartbeat: the loop beats on
every poll and after every pipeline stage, and /healthz fails once it has been silent for `stall_after_s`.
Readiness means the models are loaded and the consumer is running; it drops when the process is stopping
and while store partitions are being restored from their changelog (their alerts wait; the instance's
other partitions keep flowing).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable

Clock = Callable[[], float]


class Health:
    """Thread-safe state shared by the pipeline (writer) and the HTTP thread (reader)."""

    def __init__(self, stall_after_s: float = 120.0, clock: Clock = time.monotonic) -> None:
        if stall_after_s <= 0:
            raise ValueError(f"stall_after_s must be > 0, got {stall_after_s}")
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_beat: float | None = None
        self._ready = False
        self._state = "starting"
        self._assigned = 0
        self._restoring = 0

    def beat(self) -> None:
        with self._lock:
            self._last_beat = self._clock()

    def running(self) -> None:
        """The models are loaded and the consumer is polling."""
        with self._lock:
            self._ready, self._state = True, "running"
            self._last_beat = self._clock()

    def stopping(self) -> None:
        with self._lock:
            self._ready, self._state = False, "stopping"

    def assigned(self, partitions: int) -> None:
        with self._lock:
            self._assigned = partitions

    def restoring(self, partitions: int) -> None:
        """How many store partitions are being restored now (not ready while > 0)."""
        with self._lock:
            self._restoring = partitions

    def report(self) -> tuple[bool, bool, dict]:
        """(live, ready, details) as of now."""
        with self._lock:
            now = self._clock()
            silent = None if self._last_beat is None else now - self._last_beat
            # Before the first beat the process is still loading: that is the startup probe's business.
            live = silent is None or silent <= self.stall_after_s
            details = {
                "state": ("restoring" if self._restoring else self._state) if live else "stalled",
                "seconds_since_heartbeat": None if silent is None else round(silent, 3),
                "stall_after_s": self.stall_after_s,
                "assigned_partitions": self._assigned,
                "restoring_partitions": self._restoring,
            }
            return live, self._ready and live and not self._restoring, details

    def wsgi(self, fallback: Callable) -> Callable:
        """A WSGI app answering /healthz and /readyz itself and every other path with `fallback`."""

        def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path not in ("/healthz", "/readyz"):
                return fallback(environ, start_response)
            live, ready, details = self.report()
            ok = live if path == "/healthz" else ready
            body = json.dumps({"ok": ok, **details}).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        return app
