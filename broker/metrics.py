"""Every Prometheus metric varstream exports, defined once under the `varstream_` namespace.

Labels come from small fixed sets (stage, reason, class, outcome, partition) — never an object id.
`Metrics(registry)` lets tests use a fresh `CollectorRegistry`; the process uses the default one.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Info, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from broker.alerts import DROP_REASONS, UNUSABLE_REASONS
from broker.health import Health
from broker.history import READ_REASONS, SKIP_REASON

NAMESPACE = "varstream"

# Pipeline stages timed per batch (label values of varstream_stage_latency_seconds). "consume" is the
# wait for a non-empty batch; "store" covers merging, the trigger decision and the local commit.
STAGES = ("consume", "decode", "store", "period", "fold", "infer", "produce", "commit")
# Outcomes of one consumed alert: exactly one per alert (the accounting identity).
OUTCOMES = ("annotated", "skipped", "dead_lettered")
# Reasons an alert was consumed but not annotated (label values of varstream_alerts_skipped_total):
# first what the decoder finds in a valid alert with nothing usable, then the trigger's and the science's.
SKIP_REASONS = (
    *UNUSABLE_REASONS,
    "too_few_points",  # the object's light curve is still shorter than trigger.min_points
    "not_enough_new_points",  # classified recently; too few new points since
    "too_soon",  # classified recently; less than trigger.min_interval_days since
    "non_periodic",  # the period search found no significant period
    "no_window",  # folding produced no window (e.g. points collapse onto few phases)
)
# Reasons a message went to the dead-letter topic: it is not a valid alert (or varstream failed on it).
DEAD_LETTER_REASONS = (
    "undecodable",  # not Avro / not wire format, truncated, corrupt or oversized block, unknown codec
    "schema_invalid",  # the writer schema does not parse, is unbounded, or the record does not fit it
    "unknown_schema",  # a wire-format schema id no local file or registry knows
    "missing_field",  # a record without what every alert has (objectId/candidate, diaSource/diaSourceId)
    "internal",  # a varstream bug (see its log); the message is kept for a replay after the fix
)

# 10 ms .. 120 s, roughly x2 steps: resolves both the micro-batch delay and the 60 s LSST budget.
LATENCY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    45.0,
    60.0,
    90.0,
    120.0,
)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
# One partition's restore from its changelog: from a no-op to many minutes for a large store.
RESTORE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
# Kinds of changelog record: an object's full state, or a tombstone for an evicted object.
CHANGELOG_KINDS = ("state", "tombstone")
# Light-curve sizes of the annotations (label "points"): the window-length buckets the novelty and
# temperature tables are fitted at. Young objects are served one window of all their points and are
# flagged novel more often than full ones (README: 7.4% against 4.8% of known objects at p95), so the
# novelty rate is watched per size.
POINTS_EDGES = (50, 100, 150, 200)
POINTS_BINS = ("<50", "50-99", "100-149", "150-199", "200+")


def points_bin(n_points: int) -> str:
    """The "points" label of a light curve of `n_points` detections (one of POINTS_BINS)."""
    below = sum(n_points >= edge for edge in POINTS_EDGES)
    return POINTS_BINS[below]


class Metrics:
    """The metric objects of one process (or of one test, with its own registry)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        ns = NAMESPACE
        self.registry = registry
        self.end_to_end_latency = Histogram(
            "end_to_end_latency_seconds",
            "Kafka message timestamp of an alert to delivery of its annotation",
            namespace=ns,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.stage_latency = Histogram(
            "stage_latency_seconds",
            "Wall time of one pipeline stage for one batch",
            ["stage"],
            namespace=ns,
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "batch_alerts",
            "Alerts per consumed batch",
            namespace=ns,
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.inference_batch_size = Histogram(
            "inference_batch_windows",
            "Windows per micro-batch sent to the models",
            namespace=ns,
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.alerts_consumed = Counter(
            "alerts_consumed",
            "Alerts read from the input topics",
            namespace=ns,
            registry=registry,
        )
        self.alerts_annotated = Counter(
            "alerts_annotated",
            "Alerts answered by an annotation",
            namespace=ns,
            registry=registry,
        )
        self.alerts_skipped = Counter(
            "alerts_skipped",
            "Alerts consumed but not classified, by reason",
            ["reason"],
            namespace=ns,
            registry=registry,
        )
        self.alerts_dead_lettered = Counter(
            "alerts_dead_lettered",
            "Messages sent to the dead-letter topic, by reason",
            ["reason"],
            namespace=ns,
            registry=registry,
        )
        self.points_dropped = Counter(
            "points_dropped",
            "Photometry points discarded while decoding, by reason",
            ["reason"],
            namespace=ns,
            registry=registry,
        )
        self.history_decisions = Counter(
            "history_decisions",
            "Alerts decoded lazily: history read or skipped, by reason (decode.history = lazy)",
            ["decision", "reason"],
            namespace=ns,
            registry=registry,
        )
        self.annotations_by_class = Counter(
            "annotations_by_class",
            "Annotations by predicted class",
            ["class_name"],
            namespace=ns,
            registry=registry,
        )
        self.annotations_by_points = Counter(
            "annotations_by_points",
            "Annotations by the number of points of the light curve classified (all bands)",
            ["points"],
            namespace=ns,
            registry=registry,
        )
        self.novel_annotations = Counter(
            "novel_annotations",
            "Annotations flagged novel by the served novelty model, by the points of the light curve",
            ["points"],
            namespace=ns,
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "consumer_lag_messages",
            "High watermark minus consumer position, per assigned partition",
            ["topic", "partition"],
            namespace=ns,
            registry=registry,
        )
        self.store_objects = Gauge(
            "store_objects",
            "Objects held in the light-curve store",
            namespace=ns,
            registry=registry,
        )
        self.store_bytes = Gauge(
            "store_bytes",
            "Bytes on disk of the open store partitions (SQLite files and their write-ahead logs)",
            namespace=ns,
            registry=registry,
        )
        self.store_restoring_partitions = Gauge(
            "store_restoring_partitions",
            "Store partitions being restored from the changelog now (readiness is 503 while > 0)",
            namespace=ns,
            registry=registry,
        )
        self.store_restore_records = Counter(
            "store_restore_records",
            "Changelog records applied to the store by restores",
            namespace=ns,
            registry=registry,
        )
        self.store_restore_seconds = Histogram(
            "store_restore_seconds",
            "Wall time of one partition's restore from its changelog",
            namespace=ns,
            buckets=RESTORE_BUCKETS,
            registry=registry,
        )
        self.store_behind = Counter(
            "store_behind",
            "Store partitions found behind the committed input offset at assignment (moved back from another "
            "instance, or a crash between the offset and store commits) and brought up to date",
            namespace=ns,
            registry=registry,
        )
        self.changelog_records = Counter(
            "changelog_records",
            "Records produced to the store's changelog topics, by kind",
            ["kind"],
            namespace=ns,
            registry=registry,
        )
        self.changelog_bytes = Counter(
            "changelog_bytes",
            "Value bytes produced to the store's changelog topics",
            namespace=ns,
            registry=registry,
        )
        self.kafka_broker_up = Gauge(
            "kafka_broker_up",
            "1 while the Kafka clients hold a broker connection, 0 during an outage",
            namespace=ns,
            registry=registry,
        )
        self.kafka_broker_up.set(1)
        self.model_info = Info(
            "model", "Models in use and the device they run on", namespace=ns, registry=registry
        )
        self.last_annotation_timestamp = Gauge(
            "last_annotation_timestamp_seconds",
            "Unix time of the last delivered annotation",
            namespace=ns,
            registry=registry,
        )
        self.loop_heartbeat = Gauge(
            "loop_heartbeat_timestamp_seconds",
            "Unix time the consume loop last moved (a poll or a finished stage); idle polls count",
            namespace=ns,
            registry=registry,
        )
        # Create known label values up front so every series exists from zero.
        for stage in STAGES:
            self.stage_latency.labels(stage=stage)
        for reason in SKIP_REASONS:
            self.alerts_skipped.labels(reason=reason)
        for reason in DEAD_LETTER_REASONS:
            self.alerts_dead_lettered.labels(reason=reason)
        for reason in DROP_REASONS:
            self.points_dropped.labels(reason=reason)
        for reason in READ_REASONS:
            self.history_decisions.labels(decision="read", reason=reason)
        self.history_decisions.labels(decision="skipped", reason=SKIP_REASON)
        for kind in CHANGELOG_KINDS:
            self.changelog_records.labels(kind=kind)


class _QuietHandler(WSGIRequestHandler):
    """Scrapes and probes every few seconds would flood the log."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(
    port: int,
    host: str = "0.0.0.0",
    registry: CollectorRegistry = REGISTRY,
    health: Health | None = None,
) -> WSGIServer:
    """Expose /metrics (and /healthz, /readyz when `health` is given) over HTTP from a daemon thread.

    Port 0 is rejected because scrapers need it fixed. prometheus-client's own server cannot add paths,
    so its WSGI app is mounted on the same threading server it uses.
    """
    if port <= 0:
        raise ValueError(f"metrics port must be > 0, got {port}")
    app = make_wsgi_app(registry)
    if health is not None:
        app = health.wsgi(app)
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
