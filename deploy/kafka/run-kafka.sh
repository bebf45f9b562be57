#!/usr/bin/env bash
# Run a local single-node Apache Kafka (KRaft, 127.0.0.1) in the foreground; Ctrl-C stops it cleanly.
#
#   deploy/kafka/run-kafka.sh [--port 9092] [--workdir DIR] [--heap 1G]
#
# Fetches the jars on first use, then hands over to `python -m broker.offline.local_kafka`, so the broker
# settings live in one place (broker/offline/local_kafka.py).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
libs="${VARSTREAM_KAFKA_LIBS:-$repo_root/.cache/kafka/libs}"
python="${PYTHON:-$repo_root/.venv/bin/python}"

[[ -x "$python" ]] || { echo "run-kafka.sh: error: $python not found: run 'make' once or set PYTHON" >&2; exit 1; }
if ! ls "$libs"/kafka_2.13-*.jar >/dev/null 2>&1; then
    echo "fetching Apache Kafka's jars into $libs (once) ..." >&2
    "$repo_root/deploy/kafka/fetch-jars.sh" "$libs"
fi
cd "$repo_root"
VARSTREAM_KAFKA_LIBS="$libs" exec "$python" -m broker.offline.local_kafka "$@"
