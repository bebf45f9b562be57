"""Changelog topic names are deterministic per consumer group and input topic."""

from __future__ import annotations

from broker.changelog import changelog_topics
from broker.config import KafkaConfig, StoreConfig


def test_default_name_is_the_group_and_one_per_input_topic() -> None:
    one = KafkaConfig(group_id="g", input_topics=["alerts"])
    assert changelog_topics(one, StoreConfig()) == {"alerts": "g-lightcurves-changelog"}
    assert changelog_topics(one, StoreConfig(changelog_topic="mine")) == {"alerts": "mine"}
    two = KafkaConfig(group_id="g", input_topics=["ztf", "lsst"])
    assert changelog_topics(two, StoreConfig()) == {
        "ztf": "g-ztf-lightcurves-changelog",
        "lsst": "g-lsst-lightcurves-changelog",
    }
    assert changelog_topics(two, StoreConfig(changelog_topic="s-{topic}")) == {
        "ztf": "s-ztf",
        "lsst": "s-lsst",
    }
