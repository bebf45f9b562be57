"""The bench's summary contract (exactly the issue's keys, plus gpu_* ones) and its per-stage arithmetic."""

from __future__ import annotations

import tomllib

import pytest

from benchmarks.e2e_bench import DEFAULTS_LABEL, overlap_estimate, repeat_summary
from benchmarks.plugin_probe import (
    STAGE_ORDER,
    Probe,
    bound_by,
    fresh_store,
    parse_setting,
    plugin_config,
    setting_label,
    stage_table,
)
from benchmarks.run import SUMMARY_KEYS, parts_to_run, summarise, summary_missing
from broker.config import load_config


def _run(alerts_per_s, p99=None):
    return {"alerts_per_s": alerts_per_s, "latency_p99_s": p99}


def test_summary_has_exactly_the_issue_keys_when_nothing_ran():
    assert summarise({}) == dict.fromkeys(SUMMARY_KEYS)


def test_summary_takes_the_worse_paced_p99_and_adds_only_gpu_keys():
    e2e = {
        "ztf": {"runs": {"full": _run(500.0), "ceiling": _run(2000.0), "paced": _run(250.0, 0.4)}},
        "lsst": {"runs": {"full": _run(90.0), "ceiling": _run(150.0), "paced": _run(45.0, 2.5)}},
    }
    period = {"period_speedup_vs_nifty_ls": 3.2, "period_recovery_ours": 0.7, "period_recovery_nifty_ls": 0.7}
    gpu = {"gpu_card": "H200", "gpu_windows_per_s": 1e5, "other": 1}
    summary = summarise({"e2e": e2e, "period": period | {"extra": 1}, "gpu": gpu})
    assert list(summary) == [*SUMMARY_KEYS, "gpu_card", "gpu_windows_per_s"]
    assert summary["paced_p99_latency_s"] == 2.5
    assert summary["lsst_365d_ceiling_alerts_per_s"] == 150.0
    assert summary["period_speedup_vs_nifty_ls"] == 3.2


def test_stage_table_lists_every_stage_and_marks_untimed_ones():
    rows = stage_table({"decode": (2.0, 4.0), "infer": (6.0, 4.0)}, alerts=1000, busy_s=10.0)
    assert [r["stage"] for r in rows] == [*STAGE_ORDER, "other"]
    decode = rows[STAGE_ORDER.index("decode")]
    assert decode["ms_per_alert"] == 2.0 and decode["share"] == 0.2 and decode["batches"] == 4
    assert rows[STAGE_ORDER.index("trigger")]["seconds"] is None
    assert rows[-1]["seconds"] == 2.0 and rows[-1]["share"] == 0.2  # busy time no stage accounts for
    assert bound_by(rows)["stage"] == "infer"
    assert bound_by(stage_table({}, alerts=0, busy_s=0.0)) is None


def test_the_summary_is_complete_whenever_e2e_runs():
    assert parts_to_run(["e2e"]) == ["period", "e2e"]  # the period keys come from the same run
    assert parts_to_run(["decode"]) == ["decode"]
    assert parts_to_run(None)[:1] == ["period"]
    missing = summary_missing(dict.fromkeys(SUMMARY_KEYS) | {"period_recovery_ours": 0.7})
    assert missing["ztf_alerts_per_s"] == "e2e" and missing["period_speedup_vs_nifty_ls"] == "period"
    assert "period_recovery_ours" not in missing and len(missing) == len(SUMMARY_KEYS) - 1


def test_a_variant_sets_its_keys_on_top_of_the_bench_config(tmp_path):
    settings = parse_setting('kafka.batch_timeout_s=0.25, period.threads="auto",period.engine=nifty-ls')
    assert settings == {
        "kafka": {"batch_timeout_s": 0.25},
        "period": {"threads": "auto", "engine": "nifty-ls"},
    }
    assert setting_label(settings) == "kafka.batch_timeout_s=0.25,period.threads=auto,period.engine=nifty-ls"
    path = plugin_config(tmp_path / "v.toml", "127.0.0.1:9", "t", "g", 9999, settings=settings)
    data = tomllib.loads(path.read_text())
    assert data["kafka"]["batch_timeout_s"] == 0.25 and data["kafka"]["input_topics"] == ["t"]
    config = load_config(path, environ={})
    assert config.kafka.batch_timeout_s == 0.25 and config.period.threads == "auto"
    with pytest.raises(ValueError, match=r"section\.key=value"):
        parse_setting("batch_timeout_s=0.25")


def test_overlap_bound_hides_the_smaller_of_period_and_infer():
    stages = stage_table({"period": (2.0, 1.0), "infer": (5.0, 1.0)}, alerts=10, busy_s=10.0)
    estimate = overlap_estimate({"stages": stages, "busy_s": 10.0})
    assert estimate["max_saving_fraction"] == 0.2
    assert abs(estimate["max_speedup"] - 1.25) < 1e-12


def test_memory_reports_start_end_max_slope_and_each_minute():
    probe = Probe(pid=0, metrics_url="")
    probe.rss_mb = [(t, 100.0 + (50.0 if t >= 30 else 0.0)) for t in range(0, 181, 1)]
    memory = probe.memory(after_s=0.0)
    assert (memory["rss_start_mb"], memory["rss_end_mb"], memory["rss_max_mb"]) == (100.0, 150.0, 150.0)
    assert memory["rss_by_minute_mb"] == [100.0, 150.0, 150.0, 150.0]
    assert memory["rss_slope_mb_per_min"] > 0


def test_period_comparison_calls_the_period_bench_function_when_it_exists(monkeypatch):
    from benchmarks import period_bench, run

    found = {"period_speedup_vs_nifty_ls": 3.5, "period_recovery_ours": 0.9, "period_recovery_nifty_ls": 0.9}
    monkeypatch.delattr(period_bench, "compare_with_nifty_ls", raising=False)
    monkeypatch.setattr(period_bench, "period_summary", lambda: found, raising=False)
    assert run.period_comparison() == {"source": "benchmarks.period_bench.period_summary"} | found


def test_fresh_store_removes_the_partition_files_and_nothing_else(tmp_path):
    """The store writes `<stem>.<topic>.<partition>.sqlite` (and -wal/-shm): all go, the run's files stay."""
    stale = ["ztf-full.sqlite", "ztf-full.bench-ztf.0.sqlite", "ztf-full.bench-ztf.0.sqlite-wal"]
    kept = ["ztf-full.toml", "ztf-full.summary.json", "ztf-full-warm-up.bench-ztf.0.sqlite"]
    for name in stale + kept:
        (tmp_path / name).write_text("x")
    assert fresh_store(tmp_path / "ztf-full.sqlite") == tmp_path / "ztf-full.sqlite"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_repeated_rounds_give_each_settings_median_spread_and_ratio_to_the_defaults():
    def runs(rate, p99):
        return {"full": {"alerts_per_s": rate}, "paced": {"latency_p99_s": p99}}

    rows = [
        (DEFAULTS_LABEL, runs(1761.0, 0.55)),
        ("one network", runs(1887.0, 0.45)),
        (DEFAULTS_LABEL, runs(1491.0, 0.54)),
        ("one network", runs(1700.0, None)),  # a paced run that annotated nothing has no p99
        (DEFAULTS_LABEL, runs(1600.0, 0.60)),
        ("one network", runs(1800.0, 0.50)),
    ]
    summary = repeat_summary(rows)
    assert list(summary) == [DEFAULTS_LABEL, "one network"]
    defaults, other = summary[DEFAULTS_LABEL], summary["one network"]
    assert defaults["full_alerts_per_s"] == [1761.0, 1491.0, 1600.0] and defaults["rounds"] == 3
    assert defaults["median_full_alerts_per_s"] == 1600.0 and defaults["median_paced_p99_s"] == 0.55
    assert defaults["ratio_to_defaults"] == 1.0
    assert other["median_full_alerts_per_s"] == 1800.0 and other["median_paced_p99_s"] == 0.475
    assert other["ratio_to_defaults"] == pytest.approx(1800.0 / 1600.0)
