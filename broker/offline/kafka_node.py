"""What one Kafka JVM process needs: its jars, free loopback ports, its properties, java, and its log.

Kept apart from `local_kafka.LocalKafka`, which drives the process's life (format, launch, readiness,
stop), so each stays one job.
"""

from __future__ import annotations

import base64
import ctypes
import os
import shutil
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from broker.errors import ConfigError

LIBS_ENV = "VARSTREAM_KAFKA_LIBS"
LIBS_RELATIVE = Path(".cache/kafka/libs")
NODE_ID = 1
# The JVM flags of Kafka's kafka-run-class.sh / kafka-server-start.sh, with the heap fixed (-Xms = -Xmx).
JVM_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
LOG4J2_PROPERTIES = """\
status = warn
shutdownHook = disable
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka-request.name = kafka.request.logger
logger.kafka-request.level = WARN
logger.state-change.name = state.change.logger
logger.state-change.level = WARN
"""


def find_kafka_libs() -> Path:
    """The folder of Kafka's jars: $VARSTREAM_KAFKA_LIBS, else `.cache/kafka/libs` in the repo or the cwd."""
    env_value = os.environ.get(LIBS_ENV)
    if env_value:
        libs = Path(env_value).expanduser()
        if not has_kafka_jar(libs):
            raise ConfigError(
                f"{LIBS_ENV}={env_value!r} holds no kafka_2.13-*.jar: run `make kafka` to fetch it"
            )
        return libs.resolve()
    repo_root = Path(__file__).resolve().parents[2]
    candidates = [repo_root / LIBS_RELATIVE, Path.cwd() / LIBS_RELATIVE]
    for libs in candidates:
        if has_kafka_jar(libs):
            return libs.resolve()
    tried = ", ".join(str(c) for c in dict.fromkeys(candidates))
    raise ConfigError(
        f"Apache Kafka's jars not found (looked in {tried}): run `make kafka` at the repo root "
        f"(or deploy/kafka/fetch-jars.sh), or set {LIBS_ENV} to a folder of Kafka's jars"
    )


def has_kafka_jar(libs: Path) -> bool:
    return libs.is_dir() and any(libs.glob("kafka_2.13-*.jar"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when a server could listen on 127.0.0.1:port now: nothing listens there.

    SO_REUSEADDR, as Kafka and every server set it, so closed connections in TIME_WAIT do not count.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def new_cluster_id() -> str:
    """A random cluster id in Kafka's own format (a UUID, URL-safe base64 without padding: 22 chars)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


def storage_format_args(cluster_id: str, properties: Path) -> list[str]:
    """StorageTool's arguments; `--cluster-id=<id>` in one token, because a URL-safe base64 id can begin
    with '-' (1 time in 64) and `-t <id>` then reads it as an option ("expected one argument")."""
    return ["format", f"--cluster-id={cluster_id}", "-c", str(properties)]


def server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    """server.properties of a combined broker+controller node on loopback, tuned for fast tests."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": NODE_ID,
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": data_dir,
        "num.partitions": 1,
        "default.replication.factor": 1,
        # One replica and few partitions for the internal topics: there is one broker, and creating the
        # default 50 partitions of __consumer_offsets would slow the first group join by seconds.
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 1,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 1,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "share.coordinator.state.topic.num.partitions": 1,
        "group.initial.rebalance.delay.ms": 0,
        # KIP-848 groups (group.protocol=consumer) move partitions on heartbeats: 5 s by default, 1 s here.
        "group.consumer.min.heartbeat.interval.ms": 500,
        "group.consumer.heartbeat.interval.ms": 1000,
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def first_error(lines: list[str], max_lines: int = 12) -> list[str]:
    """The first ERROR entry of a Kafka log with its message and causes, stack frames left out."""
    for i, line in enumerate(lines):
        if "] ERROR " in line:
            entry = [line]
            for follow in lines[i + 1 :]:
                if follow.startswith("[") or len(entry) >= max_lines:
                    break
                if not follow.lstrip().startswith(("at ", "...")):
                    entry.append(follow)
            return entry
    return []


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise ConfigError("java not found on PATH or in $JAVA_HOME: Apache Kafka 4.x needs Java 17+")
    return java


def die_with_parent_preexec() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the broker when this process dies, so no JVM outlives a crash.

    Linux ties the signal to the thread that forks, so it is set only when starting from the main thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec
