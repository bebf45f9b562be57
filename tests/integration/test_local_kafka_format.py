"""The local broker formats its storage with any valid cluster id, including one that begins with '-'.

URL-safe base64 ids begin with '-' one time in 64; `StorageTool format -t <id>` then took the id for an
option and the start failed. This test forces such an id through the real StorageTool and broker.
"""

from __future__ import annotations

import base64
import uuid

import pytest

from broker.offline.kafka_node import find_kafka_libs
from broker.offline.local_kafka import LocalKafka

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]


def cluster_id_starting_with_dash() -> str:
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if cid.startswith("-"):
            return cid


def test_a_cluster_id_starting_with_a_dash_formats_and_starts(tmp_path) -> None:
    cid = cluster_id_starting_with_dash()
    with LocalKafka(libs_dir=find_kafka_libs(), workdir=tmp_path / "kafka", cluster_id=cid) as broker:
        meta = (broker.workdir / "data" / "meta.properties").read_text()
        assert f"cluster.id={cid}" in meta
        assert broker.bootstrap_servers
