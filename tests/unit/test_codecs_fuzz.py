"""Fuzzing the decoders with mutated real alerts (bit flips, truncation, splices, inserted bytes).

Whatever the bytes, `decode` returns an Alert or raises one of the project's two answers: DecodeError
(dead letter) or UnusableAlert (skip). It never raises anything else, never hangs (hypothesis deadline,
pytest timeout) and never allocates much (tracemalloc peak per example).
"""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.alerts import Alert
from broker.codecs import decode
from broker.errors import DecodeError, UnusableAlert
from tests.fixtures.alert_samples import all_messages

MESSAGES = list(all_messages().values())
PEAK_LIMIT = 64 << 20  # far above a real alert's decode (~1 MiB), far below a runaway allocation
FUZZ = settings(
    max_examples=400,
    deadline=2000,  # ms per example: a real alert decodes in about 1 ms
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples every run, so a failure reproduces
)


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(MESSAGES)))
    kind = draw(st.sampled_from(["flip", "truncate", "splice", "insert", "overwrite"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 16))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "splice":
        other = draw(st.sampled_from(MESSAGES))
        data = data[: draw(st.integers(0, len(data)))] + other[draw(st.integers(0, len(other))) :]
    elif kind == "insert":
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=16))
    else:  # large varints: declared lengths and counts of 2^40 and more
        i = draw(st.integers(0, len(data) - 1))
        data[i : i + 9] = draw(st.sampled_from([b"\xff" * 8 + b"\x7f", b"\xfe\xff\xff\xff\xff\x0f", b"\x81"]))
    return bytes(data)


def decode_bounded(payload: bytes) -> None:
    tracemalloc.start()
    try:
        try:
            result = decode(payload)
        except (DecodeError, UnusableAlert):
            return
        assert isinstance(result, Alert)
        assert len(result.lightcurve) >= 1
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < PEAK_LIMIT, f"decoding {len(payload)} bytes peaked at {peak} bytes"


@pytest.mark.timeout(300)
@FUZZ
@given(mutated())
def test_mutated_real_alerts_fail_only_with_the_projects_errors(payload):
    decode_bounded(payload)


@pytest.mark.timeout(120)
@settings(FUZZ, max_examples=200)
@given(st.binary(max_size=2048))
def test_random_bytes_fail_only_with_the_projects_errors(payload):
    decode_bounded(payload)
