"""A real single-node Apache Kafka broker (KRaft, loopback only) for tests, the demo and users.

Kafka's own launch scripts only put the distribution's jars on the class path and run a main class, so
this module does the same with the jars `make kafka` fetched from Maven Central (deploy/kafka/pom.xml):
`kafka.tools.StorageTool format` once, then `kafka.Kafka server.properties`, both under `java -cp libs/*`.

    with LocalKafka() as kafka:               # ports picked free on 127.0.0.1, data in a temp dir
        kafka.create_topics(["alerts"], partitions=4)
        producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})

Users run one in the foreground with `python -m broker.offline.local_kafka` (Ctrl-C stops it cleanly).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from broker.errors import ConfigError
from broker.offline.kafka_node import (
    JVM_FLAGS,
    LIBS_ENV,
    LOG4J2_PROPERTIES,
    NODE_ID,
    die_with_parent_preexec,
    find_java,
    find_kafka_libs,
    first_error,
    free_port,
    has_kafka_jar,
    new_cluster_id,
    port_is_free,
    server_properties,
    storage_format_args,
)

PROBE_TOPIC = "varstream-readiness-probe"
LOG_TAIL_LINES = 40
# librdkafka's own log lines (e.g. "connection refused" while the JVM boots) go to this logger, not stderr;
# failures that matter reach callers as exceptions.
RDKAFKA_LOG = logging.getLogger("broker.offline.local_kafka.rdkafka")
RDKAFKA_LOG.addHandler(logging.NullHandler())
LOG = logging.getLogger(__name__)


class LocalKafka:
    """One Apache Kafka broker+controller process on 127.0.0.1, started and stopped by this object.

    `libs_dir`: Kafka's jars (default `find_kafka_libs()`). `workdir`: where server.properties, the data
    and the logs go (default a temp dir removed by `stop`; a given one is kept, and its data reused on the
    next start). `heap`: JVM heap, fixed (-Xms = -Xmx). `port`: the client port (default a free one).
    The broker's log is `<workdir>/logs/server.log`, the JVM's own output `<workdir>/logs/jvm.out`.
    """

    def __init__(
        self,
        libs_dir: Path | None = None,
        workdir: Path | None = None,
        heap: str = "1G",
        *,
        port: int | None = None,
        cluster_id: str | None = None,
    ) -> None:
        self.libs_dir = Path(libs_dir) if libs_dir is not None else find_kafka_libs()
        if not has_kafka_jar(self.libs_dir):
            raise ConfigError(f"libs_dir {self.libs_dir} holds no kafka_2.13-*.jar: run `make kafka`")
        self._given_workdir = Path(workdir) if workdir is not None else None
        self.heap = heap
        self._requested_port = port
        self._cluster_id = cluster_id  # None: a new random one per formatted data dir
        self.workdir: Path | None = None
        self.port: int | None = None
        self.controller_port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: AdminClient | None = None
        self.start_seconds: float | None = None  # wall time of the last successful start()
        self._launched_at = 0.0
        self.exit_code: int | None = None  # of the last stopped JVM; -9 means it had to be killed

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """`127.0.0.1:<port>` of the running broker, for `bootstrap.servers`."""
        if self.port is None or not self.is_running():
            raise ConfigError("LocalKafka is not running: call start() first")
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        if self.workdir is None:
            raise ConfigError("LocalKafka has no workdir yet: call start() first")
        return self.workdir / "logs" / "server.log"

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 90) -> None:
        """Format storage (once), launch the broker, return when it serves groups and transactions.

        Raises ConfigError with the tail of the broker's log when it exits or is not ready within `timeout` s.
        """
        if self.is_running():
            raise ConfigError(f"LocalKafka is already running at 127.0.0.1:{self.port}")
        java = find_java()
        began = time.monotonic()
        deadline = began + timeout
        self.workdir = self._given_workdir or Path(tempfile.mkdtemp(prefix="varstream-kafka-"))
        attempts = 1 if self._requested_port else 3  # picked ports can be taken in the meantime: re-pick
        try:
            for attempt in range(1, attempts + 1):
                self._launch(java, deadline)
                try:
                    self._wait_until_ready(deadline)
                    break
                except _PortTaken:
                    self._terminate(timeout=10)
                    if attempt == attempts:
                        raise ConfigError(f"Kafka could not bind its ports:\n{self.log_tail()}") from None
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        atexit.register(self.stop)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the broker (clean shutdown), SIGKILL it after `timeout` s; remove a temp workdir."""
        atexit.unregister(self.stop)
        self._admin = None
        self._terminate(timeout)
        if self.workdir is not None and self._given_workdir is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- topics ------------------------------------------------------------------------------------

    def create_topics(
        self, names: Iterable[str], partitions: int = 1, config: dict[str, str] | None = None
    ) -> None:
        """Create topics (replication 1) and wait until every partition has a leader.

        A topic that already exists with the same partition count is accepted; another count raises.
        """
        names = list(names)
        if not names:
            return
        admin = self._admin_client()
        new_topics = [NewTopic(name, partitions, 1, config=dict(config or {})) for name in names]
        for name, future in admin.create_topics(new_topics, operation_timeout=30, request_timeout=30).items():
            try:
                future.result()
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise ConfigError(f"could not create topic {name!r}: {error.str()}") from exc
        deadline = time.monotonic() + 30
        pending = set(names)
        while pending:
            for name in sorted(pending):
                topic = admin.list_topics(topic=name, timeout=5).topics.get(name)
                if topic is None or topic.error is not None:
                    continue
                if len(topic.partitions) != partitions:
                    raise ConfigError(
                        f"topic {name!r} exists with {len(topic.partitions)} partitions, not {partitions}"
                    )
                if all(p.leader == NODE_ID and p.error is None for p in topic.partitions.values()):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise ConfigError(f"topics {sorted(pending)} have no leader 30 s after creation")
            if pending:
                time.sleep(0.05)

    # -- internals ---------------------------------------------------------------------------------

    def _launch(self, java: str, deadline: float) -> None:
        assert self.workdir is not None
        if self._requested_port and not port_is_free(self._requested_port):
            raise ConfigError(f"port {self._requested_port} on 127.0.0.1 is in use: pick another --port")
        self.port = self._requested_port or free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        data_dir = self.workdir / "data"
        logs_dir = self.workdir / "logs"
        logs_dir.mkdir(parents=True, exist_ok=True)
        properties = self.workdir / "server.properties"
        properties.write_text(server_properties(self.port, self.controller_port, data_dir))
        log4j = self.workdir / "log4j2.properties"
        log4j.write_text(LOG4J2_PROPERTIES.format(log_file=logs_dir / "server.log"))
        java_cmd = [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={logs_dir}",
            "-cp",
            str(self.libs_dir / "*"),
        ]
        if not (data_dir / "meta.properties").exists():
            self._format_storage(java_cmd, properties, deadline)
        self._launched_at = time.monotonic()
        jvm_out = (logs_dir / "jvm.out").open("ab")
        try:
            self._process = subprocess.Popen(
                [*java_cmd, "kafka.Kafka", str(properties)],
                stdin=subprocess.DEVNULL,
                stdout=jvm_out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop Kafka cleanly
                preexec_fn=die_with_parent_preexec(),
            )
        finally:
            jvm_out.close()

    def _format_storage(self, java_cmd: list[str], properties: Path, deadline: float) -> None:
        """`kafka-storage.sh format` for a fresh data dir (static voters, so no --standalone is needed)."""
        cluster_id = self._cluster_id or new_cluster_id()
        cmd = [*java_cmd, "kafka.tools.StorageTool", *storage_format_args(cluster_id, properties)]
        try:
            done = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                cwd=self.workdir,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(f"kafka.tools.StorageTool format took longer than {exc.timeout:.0f} s") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            tail = "\n".join(output.splitlines()[-LOG_TAIL_LINES:])
            raise ConfigError(f"kafka.tools.StorageTool format failed (exit {done.returncode}):\n{tail}")

    def _wait_until_ready(self, deadline: float) -> None:
        """Wait until a client sees the broker, a consumer group can be joined and a transaction begun.

        Joining a group and initialising a transactional producer create __consumer_offsets and
        __transaction_state, which takes seconds once; paying it here keeps the first test or demo step fast.
        """
        bootstrap = f"127.0.0.1:{self.port}"
        admin = AdminClient({"bootstrap.servers": bootstrap, "logger": RDKAFKA_LOG})
        while True:
            self._check_alive()
            try:
                if NODE_ID in admin.list_topics(timeout=1).brokers:
                    break
            except KafkaException:
                pass
            if time.monotonic() > deadline:
                raise ConfigError(f"Kafka at {bootstrap} not reachable in time:\n{self.log_tail()}")
            time.sleep(0.2)
        self._admin = admin
        seen_at = time.monotonic()
        self.create_topics([PROBE_TOPIC])
        self._join_probe_group(bootstrap, deadline)
        joined_at = time.monotonic()
        self._init_probe_transaction(bootstrap, deadline)
        for future in admin.delete_topics([PROBE_TOPIC], operation_timeout=30).values():
            future.result()
        LOG.info(
            "Kafka at %s: metadata after %.1f s of JVM, group joined in %.1f s, transactions ready in %.1f s",
            bootstrap,
            seen_at - self._launched_at,
            joined_at - seen_at,
            time.monotonic() - joined_at,
        )

    def _init_probe_transaction(self, bootstrap: str, deadline: float) -> None:
        """Initialise a throwaway transactional producer: the first one creates __transaction_state."""
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "transactional.id": f"varstream-readiness-{uuid.uuid4().hex[:8]}",
                "logger": RDKAFKA_LOG,
            }
        )
        try:
            producer.init_transactions(max(1.0, deadline - time.monotonic()))
        except KafkaException as exc:
            raise ConfigError(
                f"Kafka at {bootstrap} could not initialise a transaction: {exc}\n{self.log_tail()}"
            ) from exc

    def _join_probe_group(self, bootstrap: str, deadline: float) -> None:
        """Join a throwaway consumer group: the first join also creates __consumer_offsets (seconds)."""
        assigned = threading.Event()
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"varstream-readiness-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "logger": RDKAFKA_LOG,
            }
        )
        try:
            consumer.subscribe([PROBE_TOPIC], on_assign=lambda _consumer, partitions: assigned.set())
            while not assigned.is_set():
                self._check_alive()
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"no consumer group could join Kafka at {bootstrap}:\n{self.log_tail()}"
                    )
                consumer.poll(0.2)
        finally:
            consumer.close()

    def _check_alive(self) -> None:
        assert self._process is not None
        code = self._process.poll()
        if code is None:
            return
        server_log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        if "java.net.BindException" in server_log and self._requested_port is None:
            raise _PortTaken
        raise ConfigError(f"Kafka exited with code {code} during start-up:\n{self.log_tail()}")

    def _terminate(self, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.exit_code = process.returncode

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The broker log's first ERROR (without stack frames) and last lines, and the JVM's own output."""
        if self.workdir is None:
            return "(no workdir)"
        parts = []
        server_log = self.workdir / "logs" / "server.log"
        if server_log.exists():
            text = server_log.read_text(errors="replace").splitlines()
            entry = first_error(text)
            if entry:
                parts.append(f"--- {server_log}: first error ---\n" + "\n".join(entry))
            if text:
                parts.append(f"--- {server_log}: last {min(lines, len(text))} lines ---")
                parts.extend(text[-lines:])
        jvm_out = self.workdir / "logs" / "jvm.out"
        if jvm_out.exists() and jvm_out.stat().st_size:
            text = jvm_out.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {jvm_out}: last {len(text)} lines ---")
            parts.extend(text)
        return "\n".join(parts) or f"(no log under {self.workdir / 'logs'})"

    def _admin_client(self) -> AdminClient:
        if self._admin is None or not self.is_running():
            raise ConfigError("LocalKafka is not running: call start() first")
        return self._admin


class _PortTaken(Exception):
    """Another process took a picked port between picking and binding: pick again."""


def main(argv: list[str] | None = None) -> int:
    """Run a broker in the foreground until Ctrl-C (or SIGTERM), then stop it cleanly."""
    parser = argparse.ArgumentParser(
        prog="python -m broker.offline.local_kafka",
        description="Run a local single-node Apache Kafka broker.",
    )
    parser.add_argument(
        "--port", type=int, default=None, help="client port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep data and logs here (default: temp)")
    parser.add_argument("--heap", default="1G", help="JVM heap, e.g. 1G or 512M (default: 1G)")
    parser.add_argument(
        "--libs", type=Path, default=None, help=f"Kafka's jars (default: ${LIBS_ENV} or cache)"
    )
    parser.add_argument("--timeout", type=float, default=90, help="seconds to wait for start-up")
    args = parser.parse_args(argv)
    try:
        kafka = LocalKafka(libs_dir=args.libs, workdir=args.workdir, heap=args.heap, port=args.port)
        print(f"starting Apache Kafka from {kafka.libs_dir} ...", flush=True)
        kafka.start(timeout=args.timeout)  # Ctrl-C here stops the half-started broker too
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    signal.signal(signal.SIGINT, lambda *_: stop_requested.set())
    try:
        print(f"Kafka is up in {kafka.start_seconds:.1f} s; log: {kafka.log_file}", flush=True)
        print(f"bootstrap.servers={kafka.bootstrap_servers}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        while not stop_requested.wait(0.5):
            if not kafka.is_running():
                print(f"error: Kafka exited on its own:\n{kafka.log_tail()}", file=sys.stderr)
                return 1
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            kafka.stop()
    print("Kafka stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
