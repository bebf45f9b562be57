"""librdkafka's logs through Python logging: rate-limited per facility, one line per outage transition."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError

from broker.kafka_log import LOGGER_NAME, KafkaClientLog, RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(fac: str, text: str) -> logging.LogRecord:
    # the shape confluent-kafka gives: logger.log(level, "%s [%s] %s", fac, client_name, message)
    return logging.LogRecord(
        LOGGER_NAME, logging.ERROR, "", 0, "%s [%s] %s", (fac, "rdkafka#consumer-1", text), None
    )


def test_rate_limit_passes_one_line_per_facility_per_interval_and_counts_the_rest() -> None:
    clock = Clock()
    limit = RateLimit(interval_s=10, clock=clock)
    assert limit.filter(record("FAIL", "connect refused"))
    cut = [limit.filter(record("FAIL", "connect refused")) for _ in range(500)]
    assert not any(cut)
    assert limit.filter(record("CONNECT", "other facility"))  # its own budget
    clock.now = 10.5
    again = record("FAIL", "connect refused")
    assert limit.filter(again)
    assert "(+500 similar in the last 10 s)" in again.getMessage()


def test_outage_is_one_line_each_way_and_drives_the_connectivity_callback(caplog) -> None:
    clock = Clock()
    states = []
    client_log = KafkaClientLog(states.append, interval_s=10, clock=clock)
    caplog.set_level(logging.INFO)
    down = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")
    for _ in range(300):
        client_log.error(down)
        client_log.stats({"brokers": {"b/1": {"state": "DOWN"}}})
    clock.now = 42
    client_log.stats({"brokers": {"b/1": {"state": "UP"}}})
    lines = [r.getMessage() for r in caplog.records if r.name == "broker.kafka_log"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Kafka brokers unreachable since ")
    assert lines[1] == "Kafka brokers reachable again after 42 s"
    assert states == [False, True]
    assert client_log.client_config()["logger"].name == LOGGER_NAME
