"""Real alert files as the surveys published them, back onto a topic: `varstream publish`.

ZTF's public archive (ztf.uw.edu/alerts/public) keeps one tarball per night of Avro files, one alert per
container: the bytes ZTF put on its Kafka topic. Brokers archive the same files in folders, and Rubin's
alerts are Confluent wire-format messages (0x00, 4-byte schema id, schemaless Avro). This module reads a
file, a folder (recursively) or a tar archive (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) and yields each
alert's message value **unchanged**, with the object id (the message key) and time read from it, so that
a stream of real alerts can be ordered, paced and published. The archive replay (`broker.offline.replay`)
makes alerts from light curves instead; this module never builds an alert.

A container holding several alerts (lsst-alert-packet's fakeAlert.avro, a broker's batch file) is cut into
one-alert containers with the same schema, as ZTF publishes them. A file that is neither an alert
container nor a wire-format alert a known schema reads is not sent: it is listed with its reason
(`Unreadable`), never dropped silently. What the plugin makes of each alert (answered, skipped, dead
letter) is its own business: the publisher sends what the survey sent.

Order: "archive" sends alerts as stored (a ZTF nightly tarball holds them in the order ZTF sent them), in
one pass; "time" sorts them by the alert's time (ZTF candidate.jd, LSST diaSource midpoint): files of a
folder are read twice (index, then send), alerts from tar archives and multi-alert containers are held in
memory up to `max_held_bytes`.
"""

from __future__ import annotations

import io
import itertools
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import fastavro

from broker.codecs.container import MAGIC, ContainerWriter
from broker.codecs.lsst import TIME_FIELDS, dia_object_id
from broker.codecs.photometry import MJD_OFFSET
from broker.codecs.resolver import WIRE_HEADER_SIZE, WIRE_MAGIC, SchemaResolver, split_wire
from broker.errors import ConfigError, DecodeError

ORDERS = ("time", "archive")
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MAX_HELD_BYTES = 4 * 2**30


@dataclass(frozen=True)
class AlertMessage:
    """One alert as it goes on the topic: key (object id), value (the survey's bytes), and where from."""

    key: str
    mjd: float
    survey: str  # "ztf" or "lsst"
    value: bytes
    source: str  # file (or "archive!member"), with "#k" for the k-th alert of a multi-alert container


@dataclass(frozen=True)
class Unreadable:
    source: str
    reason: str


@dataclass
class ReadLog:
    """What was read: files, alerts found, and every file not sent with its reason."""

    files: int = 0
    alerts: int = 0
    unreadable: list[Unreadable] = field(default_factory=list)


def is_tar(path: Path) -> bool:
    return path.name.lower().endswith(TAR_SUFFIXES)


def raw_files(path: Path) -> Iterator[tuple[str, Callable[[], bytes], bool]]:
    """(name, reader of its bytes, whether the reader may be called again later) of every file under
    `path`: the path itself, a folder's files (sorted, recursively) and the members of tar archives."""
    if not path.exists():
        raise ConfigError(f"no such file or folder: {path}")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if not is_tar(file):
            yield str(file), file.read_bytes, True
            continue
        try:
            with tarfile.open(file, "r:*") as tar:
                for member in tar:
                    if member.isfile():
                        data = tar.extractfile(member).read()
                        yield f"{file}!{member.name}", (lambda data=data: data), False
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ConfigError(f"cannot read tar archive {file}: {exc}") from exc


def envelope(record: object) -> tuple[str, float, str]:
    """(object id, MJD, survey) of an alert record, read by field name (any ZTF or LSST schema version).

    ValueError when the record is neither a ZTF alert (candidate) nor an LSST one (diaSource).
    """
    if not isinstance(record, dict):
        raise ValueError("the record is not an Avro record")
    candidate, source = record.get("candidate"), record.get("diaSource")
    if isinstance(candidate, dict):
        if record.get("objectId") is None or candidate.get("jd") is None:
            raise ValueError("ZTF alert without objectId or candidate.jd")
        return str(record["objectId"]), float(candidate["jd"]) - MJD_OFFSET, "ztf"
    if isinstance(source, dict):
        object_id = dia_object_id(record, source)
        object_id = source.get("ssObjectId") if object_id is None else object_id  # a solar-system source
        mjd = next((source[f] for f in TIME_FIELDS if source.get(f) is not None), None)
        if object_id is None or mjd is None:
            raise ValueError("LSST alert without an object id (diaObjectId, ssObjectId) or a time")
        return str(object_id), float(mjd), "lsst"
    raise ValueError("neither a ZTF alert (candidate) nor an LSST alert (diaSource)")


def split_file(name: str, data: bytes, resolver: SchemaResolver) -> list[AlertMessage]:
    """The alerts of one file as messages; ValueError (the reason) when it holds none."""
    if data[:4] == MAGIC:
        try:
            reader = fastavro.reader(io.BytesIO(data))
            records = list(reader)
        except Exception as exc:  # untrusted bytes: any failure is "not readable"
            raise ValueError(f"unreadable Avro container: {exc!r}") from exc
        if not records:
            raise ValueError("Avro container with no records")
        if len(records) == 1:
            key, mjd, survey = envelope(records[0])
            return [AlertMessage(key, mjd, survey, data, name)]
        writer = ContainerWriter(reader.writer_schema)
        out = []
        for k, record in enumerate(records):
            key, mjd, survey = envelope(record)
            out.append(AlertMessage(key, mjd, survey, writer.encode(record), f"{name}#{k}"))
        return out
    if len(data) > WIRE_HEADER_SIZE and data[0] == WIRE_MAGIC:
        try:
            schema = resolver.schema(split_wire(data))
            body = io.BytesIO(data[WIRE_HEADER_SIZE:])
            record = fastavro.schemaless_reader(body, schema, None)
        except DecodeError as exc:
            raise ValueError(f"{exc.reason}: {exc}") from exc
        except Exception as exc:
            raise ValueError(f"wire-format body does not read with its schema: {exc!r}") from exc
        key, mjd, survey = envelope(record)
        return [AlertMessage(key, mjd, survey, data, name)]
    raise ValueError(f"neither an Avro container nor a wire-format message: starts with {data[:5]!r}")


def read_alerts(
    paths: Path | Sequence[Path],
    order: str = "time",
    resolver: SchemaResolver | None = None,
    log: ReadLog | None = None,
    max_held_bytes: int = MAX_HELD_BYTES,
    on_sorted: Callable[[float, float], None] | None = None,
) -> Iterator[AlertMessage]:
    """Every alert under `paths` (one order over all of them: ORDERS); unreadable files go to
    `log.unreadable`. Time order calls `on_sorted(first mjd, last mjd)` before the first alert."""
    if order not in ORDERS:
        raise ConfigError(f"order must be one of {ORDERS}, got {order!r}")
    resolver = resolver or SchemaResolver()
    log = log if log is not None else ReadLog()

    def alerts_of(name: str, data: bytes) -> list[AlertMessage]:
        log.files += 1
        try:
            found = split_file(name, data, resolver)
        except ValueError as exc:
            log.unreadable.append(Unreadable(name, str(exc)))
            return []
        log.alerts += len(found)
        return found

    paths = [paths] if isinstance(paths, Path) else list(paths)
    files = itertools.chain.from_iterable(raw_files(Path(path)) for path in paths)
    if order == "archive":
        for name, read, _ in files:
            yield from alerts_of(name, read())
        return
    # time order: an index of the alerts, each with its value or a way to read it again
    index: list[tuple[AlertMessage, Callable[[], bytes] | None]] = []
    held = 0
    for name, read, again in files:
        found = alerts_of(name, read())
        for m in found:
            if again and len(found) == 1:  # a file of its own: read it again when its turn comes
                index.append((replace(m, value=b""), read))
            else:
                index.append((m, None))
                held += len(m.value)
        if held > max_held_bytes:
            raise ConfigError(
                f"{name}: sorting by time would hold over {max_held_bytes / 2**30:.0f} GiB of alerts in "
                "memory (tar archives, multi-alert files): publish with --order archive, or unpack it"
            )
    order_of = sorted(range(len(index)), key=lambda i: (index[i][0].mjd, i))
    if on_sorted is not None and order_of:
        on_sorted(index[order_of[0]][0].mjd, index[order_of[-1]][0].mjd)
    for i in order_of:
        message, read_again = index[i]
        yield message if read_again is None else replace(message, value=read_again())
