"""A broker outage, for real librdkafka clients: a few rate-limited lines and one clear outage line,
instead of hundreds of connection errors (about 580 in 20 s before)."""

from __future__ import annotations

import logging
import time

import pytest

from broker.config import KafkaConfig
from broker.kafka_io import KafkaIO
from tests.fixtures.prometheus import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def test_unreachable_brokers_log_little_and_say_so_once(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    states: list[bool] = []
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens there
    kio = KafkaIO(KafkaConfig(bootstrap_servers=nobody, batch_timeout_s=0.2), on_connectivity=states.append)
    try:
        started = time.monotonic()
        while time.monotonic() - started < 12:
            assert kio.consume_batch() == []
            kio.producer.poll(0)
    finally:
        kio.consumer.close()
    client = [r for r in caplog.records if r.name == "broker.librdkafka"]
    outage = [r.getMessage() for r in caplog.records if r.name == "broker.kafka_log"]
    assert 1 <= len(client) <= 6, [r.getMessage() for r in client]
    assert len(outage) == 1 and outage[0].startswith("Kafka brokers unreachable since "), outage
    assert states == [False]
