"""The alert rules, the metrics and the decoder agree on what is a skip and what is a dead letter."""

from __future__ import annotations

import re

import yaml

from broker.alerts import DROP_REASONS, UNUSABLE_REASONS
from broker.metrics import DEAD_LETTER_REASONS, SKIP_REASONS
from tests.fixtures.prometheus import RULES


def _rule(name: str) -> dict:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if name in (rule.get("record"), rule.get("alert")):
                return rule
    raise AssertionError(f"no rule {name}")


def test_skip_and_dead_letter_reasons_are_disjoint_and_decoder_skips_are_metric_labels():
    assert set(SKIP_REASONS).isdisjoint(DEAD_LETTER_REASONS)
    assert set(UNUSABLE_REASONS) <= set(SKIP_REASONS)
    assert set(DROP_REASONS).isdisjoint(DEAD_LETTER_REASONS)
    assert "no_detections" not in DEAD_LETTER_REASONS  # a valid alert with nothing usable is skipped


def test_the_unusable_ratio_selects_exactly_the_decoders_skip_reasons():
    expr = _rule("instance:varstream_alerts_unusable:ratio_rate15m")["expr"]
    (pattern,) = re.findall(r'reason=~"([^"]+)"', expr)
    assert sorted(pattern.split("|")) == sorted(UNUSABLE_REASONS)


def test_the_dead_letter_alert_reads_only_the_dead_letter_counter():
    expr = _rule("VarstreamDeadLetters")["expr"]
    assert "varstream_alerts_dead_lettered_total" in expr and "skipped" not in expr
