from broker.config import TriggerConfig
from broker.store import ObjectState
from broker.trigger import decide


def state(n, classified_n=0, classified_mjd=None):
    return ObjectState("a", n, 100.0, classified_n, classified_mjd, int(classified_n > 0))


CFG = TriggerConfig(min_points=50, min_new_fraction=0.1, min_interval_days=5.0)


def test_too_few_points():
    assert decide(state(49), 100.0, CFG).reason == "too_few_points"


def test_first_classification():
    assert decide(state(50), 100.0, CFG).classify


def test_waits_for_new_points_then_time():
    assert decide(state(54, 50, 90.0), 100.0, CFG).reason == "not_enough_new_points"
    assert decide(state(55, 50, 99.0), 100.0, CFG).reason == "too_soon"
    assert decide(state(55, 50, 90.0), 100.0, CFG).classify


def test_no_new_points_never_reclassifies_even_at_zero_fraction():
    cfg = TriggerConfig(min_points=3, min_new_fraction=0.0)
    assert decide(state(60, 60, 50.0), 100.0, cfg).reason == "not_enough_new_points"
    assert decide(state(61, 60, 50.0), 100.0, cfg).classify
