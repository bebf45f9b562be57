"""IdleExit: a run stops once idle here and nothing of the group's stream is left unread elsewhere."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException

from broker.idle_exit import IdleExit

MINE = {("alerts", 0), ("alerts", 1)}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Group:
    """What the broker says about the partitions not held here (a stand-in for KafkaIO)."""

    def __init__(self, unread: dict | None = None, wait_s: float = 20.0) -> None:
        self.unread = unread or {}
        self.wait_s = wait_s
        self.asked = 0

    def unread_elsewhere(self, assigned):
        self.asked += 1
        if self.unread is None:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return dict(self.unread)

    def rebalance_wait_s(self) -> float:
        return self.wait_s


def test_stops_after_idle_time_when_the_group_has_nothing_left():
    clock, group = Clock(), Group()
    idle = IdleExit(8.0, clock)
    clock.now += 7.9
    assert not idle.due(group, MINE, assigned_at=0.0)
    assert group.asked == 0  # no broker query before the idle time is up
    clock.now += 0.2
    assert idle.due(group, MINE, assigned_at=0.0)


def test_a_message_or_an_assignment_restarts_the_clock():
    clock, group = Clock(), Group()
    idle = IdleExit(8.0, clock)
    clock.now += 6.0
    idle.busy()
    clock.now += 6.0
    assert not idle.due(group, MINE, assigned_at=0.0)
    assigned_at = clock.now + 1.0  # a rebalance handed partitions over
    clock.now += 2.0
    assert not idle.due(group, MINE, assigned_at=assigned_at)
    clock.now += 7.0
    assert not idle.due(group, MINE, assigned_at=assigned_at)
    clock.now += 1.5
    assert idle.due(group, MINE, assigned_at=assigned_at)


def test_no_assignment_is_never_idle():
    clock, group = Clock(), Group()
    idle = IdleExit(1.0, clock)
    for _ in range(5):
        clock.now += 10.0
        assert not idle.due(group, set(), assigned_at=0.0)
    assert group.asked == 0


def test_waits_for_a_dead_members_partitions_then_gives_up_with_them_named(caplog):
    caplog.set_level(logging.INFO, logger="broker.idle_exit")
    clock, group = Clock(), Group(unread={("alerts", 2): 40}, wait_s=20.0)
    idle = IdleExit(8.0, clock)
    clock.now += 9.0
    assert not idle.due(group, MINE, assigned_at=0.0)  # the dead member has not been evicted yet
    assert "waiting up to 20 s" in caplog.text
    clock.now += 0.5
    assert not idle.due(group, MINE, assigned_at=0.0)
    assert group.asked == 1  # queries are throttled
    clock.now += 20.0
    assert idle.due(group, MINE, assigned_at=0.0)
    assert "40 messages on [('alerts', 2)] unread" in caplog.text


def test_the_backlog_handed_over_keeps_the_run_going():
    clock, group = Clock(), Group(unread={("alerts", 2): 40})
    idle = IdleExit(8.0, clock)
    clock.now += 9.0
    assert not idle.due(group, MINE, assigned_at=0.0)
    clock.now += 3.0  # the rebalance hands partition 2 over; its messages flow
    group.unread = {}
    mine = MINE | {("alerts", 2)}
    assert not idle.due(group, mine, assigned_at=clock.now - 0.1)
    clock.now += 8.5
    assert idle.due(group, mine, assigned_at=clock.now - 8.6)


def test_an_unreachable_broker_waits_one_rebalance_then_stops():
    clock, group = Clock(), Group(wait_s=5.0)
    group.unread = None
    idle = IdleExit(2.0, clock)
    clock.now += 3.0
    assert not idle.due(group, MINE, assigned_at=0.0)
    clock.now += 5.0
    assert idle.due(group, MINE, assigned_at=0.0)


def test_zero_idle_time_runs_forever():
    clock, group = Clock(), Group()
    idle = IdleExit(0.0, clock)
    clock.now += 1e6
    assert not idle.due(group, MINE, assigned_at=0.0)
