"""KafkaSink.connect: a replay fails fast and clearly when no broker answers (no alert is queued for it)."""

import socket

import pytest

from broker.errors import DeliveryError
from broker.kafka_io import KafkaSink


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on exit: nothing listens there


def test_connect_raises_a_delivery_error_naming_the_topic_when_no_broker_answers():
    sink = KafkaSink(f"127.0.0.1:{_closed_port()}", "alerts", {"log_level": 0})
    with pytest.raises(DeliveryError, match="no Kafka broker answered for topic 'alerts' in 1 s"):
        sink.connect(timeout_s=1.0)
    assert sink.delivered == 0 and sink.failed == 0  # nothing was sent
