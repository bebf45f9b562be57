"""Liveness/readiness: the heartbeat logic on a controlled clock, and the real HTTP server answering
/healthz, /readyz and /metrics on one port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from broker.config import load_config
from broker.errors import ConfigError
from broker.health import Health
from broker.metrics import Metrics, serve
from tests.fixtures.prometheus import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_live_while_starting_but_not_ready() -> None:
    health = Health(stall_after_s=10, clock=Clock())
    live, ready, details = health.report()
    assert (live, ready, details["state"]) == (True, False, "starting")
    assert details["seconds_since_heartbeat"] is None


def test_silent_loop_fails_liveness_and_readiness_after_the_stall_limit() -> None:
    clock = Clock()
    health = Health(stall_after_s=10, clock=clock)
    health.running()
    clock.now += 9.5
    assert health.report()[:2] == (True, True)
    clock.now += 1.0
    live, ready, details = health.report()
    assert (live, ready, details["state"]) == (False, False, "stalled")
    assert details["seconds_since_heartbeat"] == pytest.approx(10.5)
    health.beat()  # the loop moved again
    assert health.report()[:2] == (True, True)


def test_not_ready_while_restoring_store_partitions() -> None:
    health = Health(stall_after_s=10, clock=Clock())
    health.running()
    health.restoring(2)
    live, ready, details = health.report()
    assert (live, ready, details["state"], details["restoring_partitions"]) == (True, False, "restoring", 2)
    health.restoring(0)
    assert health.report()[:2] == (True, True)


def test_stopping_is_live_but_not_ready() -> None:
    health = Health(stall_after_s=10, clock=Clock())
    health.running()
    health.assigned(3)
    health.stopping()
    live, ready, details = health.report()
    assert (live, ready, details["state"], details["assigned_partitions"]) == (True, False, "stopping", 3)


def test_stall_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Health(stall_after_s=0)
    with pytest.raises(ConfigError, match=r"metrics\.stall_after_s"):
        load_config(None, {"metrics.stall_after_s": -1})


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_one_port_serves_metrics_and_both_probes() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.alerts_consumed.inc(7)
    clock = Clock()
    health = Health(stall_after_s=5, clock=clock)
    port = free_port()
    server = serve(port, "127.0.0.1", registry, health)
    base = f"http://127.0.0.1:{port}"
    try:
        status, body = get(base + "/metrics")
        assert status == 200 and "varstream_alerts_consumed_total 7.0" in body

        assert get(base + "/healthz")[0] == 200
        status, body = get(base + "/readyz")
        assert status == 503 and json.loads(body)["state"] == "starting"

        health.running()
        status, body = get(base + "/readyz")
        assert status == 200 and json.loads(body)["ok"] is True

        clock.now += 6
        status, body = get(base + "/healthz")
        assert status == 503 and json.loads(body)["state"] == "stalled"
        assert get(base + "/readyz")[0] == 503
    finally:
        server.shutdown()
        server.server_close()


def test_without_health_only_metrics_are_served() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    port = free_port()
    server = serve(port, "127.0.0.1", registry)
    try:
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and "varstream_alerts_consumed_total" in body  # prometheus answers any path
    finally:
        server.shutdown()
        server.server_close()


def test_port_zero_is_rejected_because_scrapers_need_a_fixed_port() -> None:
    with pytest.raises(ValueError, match="port"):
        serve(0, "127.0.0.1", CollectorRegistry())
