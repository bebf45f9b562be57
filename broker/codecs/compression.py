"""Avro container block codecs, decompressed with a size cap so hostile bytes cannot exhaust memory.

The Avro 1.x spec names six codecs: null, deflate (raw RFC 1951), snappy (raw snappy + 4-byte big-endian
CRC32 of the uncompressed data), zstandard, bzip2 and xz. fastavro decodes them all, but without a bound:
a 1 MB block can expand to gigabytes. Here each decompressor is asked for at most `limit` bytes and a
block that would exceed it is refused. Libraries: zlib, bz2, lzma (stdlib), cramjam (snappy) and
backports.zstd / compression.zstd (zstandard), the ones `fastavro[codecs]` installs.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable

from broker.errors import DecodeError

# A ZTF alert with its three cutouts is ~60-100 KB, an LSST alert <= ~82 KB: 32 MiB leaves room for any
# legitimate one-alert block while refusing decompression bombs.
MAX_BLOCK_BYTES = 32 * 1024 * 1024
CODECS = ("null", "deflate", "snappy", "zstandard", "bzip2", "xz")
_CHUNK = 1 << 20  # decompress a MiB at a time, checking the cap in between


def _too_big(codec: str, limit: int) -> DecodeError:
    return DecodeError("undecodable", f"{codec} block expands beyond {limit} bytes")


def _null(data: bytes, limit: int) -> bytes:
    return data


def _deflate(data: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(-15)
    out = bytearray(d.decompress(data, _CHUNK))
    while d.unconsumed_tail and not d.eof and len(out) <= limit:
        piece = d.decompress(d.unconsumed_tail, _CHUNK)
        if not piece:
            break  # no progress: corrupt input (checked as truncated below)
        out += piece
    if not d.eof and not d.unconsumed_tail:
        out += d.flush()  # all input consumed: what is left is at most one window (32 KiB)
    if len(out) > limit:
        raise _too_big("deflate", limit)
    if not d.eof:
        raise DecodeError("undecodable", "deflate block is truncated")
    return bytes(out)


def _bounded(decompressor, codec: str, data: bytes, limit: int) -> bytes:
    """bz2/lzma/zstd share this API: decompress(data, max_length), `needs_input` and `eof`.

    Output is taken a chunk at a time, so memory stays near `limit` whatever the block declares.
    """
    out = bytearray(decompressor.decompress(data, _CHUNK))
    while not decompressor.eof and not decompressor.needs_input and len(out) <= limit:
        piece = decompressor.decompress(b"", _CHUNK)
        if not piece:
            break  # no progress: corrupt input (checked as truncated below)
        out += piece
    if len(out) > limit:
        raise _too_big(codec, limit)
    if not decompressor.eof:
        raise DecodeError("undecodable", f"{codec} block is truncated")
    return bytes(out)


def _bzip2(data: bytes, limit: int) -> bytes:
    return _bounded(bz2.BZ2Decompressor(), "bzip2", data, limit)


def _xz(data: bytes, limit: int) -> bytes:
    return _bounded(lzma.LZMADecompressor(), "xz", data, limit)


def _zstandard(data: bytes, limit: int) -> bytes:
    try:
        from compression import zstd  # Python >= 3.14
    except ImportError:
        from backports import zstd
    return _bounded(zstd.ZstdDecompressor(), "zstandard", data, limit)


def _snappy(data: bytes, limit: int) -> bytes:
    import cramjam

    if len(data) < 4:
        raise DecodeError("undecodable", "snappy block shorter than its CRC32")
    body, crc = data[:-4], int.from_bytes(data[-4:], "big")
    declared = cramjam.snappy.decompress_raw_len(body)  # the raw format states its length up front
    if declared > limit:
        raise _too_big("snappy", limit)
    out = bytes(cramjam.snappy.decompress_raw(body))
    if zlib.crc32(out) != crc:
        raise DecodeError("undecodable", "snappy block fails its CRC32 check")
    return out


_DECOMPRESS: dict[str, Callable[[bytes, int], bytes]] = {
    "null": _null,
    "deflate": _deflate,
    "snappy": _snappy,
    "zstandard": _zstandard,
    "bzip2": _bzip2,
    "xz": _xz,
}


def decompress_block(codec: str, data: bytes, limit: int = MAX_BLOCK_BYTES) -> bytes:
    """The uncompressed bytes of one container block; DecodeError("undecodable") for an unknown codec,
    corrupt data, or a block that would expand beyond `limit` bytes."""
    decompress = _DECOMPRESS.get(codec)
    if decompress is None:
        raise DecodeError("undecodable", f"Avro codec {codec!r} is not one of {', '.join(CODECS)}")
    try:
        return decompress(data, limit)
    except DecodeError:
        raise
    except Exception as exc:  # each library has its own error types for corrupt input
        raise DecodeError("undecodable", f"corrupt {codec} block: {exc!r}") from exc
