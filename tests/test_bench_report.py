"""The nightly benchmark's Markdown report on a fake measures dict: tables, R and the targets' verdicts."""

import importlib.util
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "bench_report", Path(__file__).resolve().parent.parent / "benchmarks" / "bench_report.py"
)
bench_report = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench_report)


LIMITED = {"PYRAMID_DUCKDB_MEMORY_LIMIT": "2GB", "PYRAMID_DUCKDB_THREADS": "2"}


def size(users, wall, cpu, peak, floor, steps, erasure_requests=0, day="2026-10-03"):
    return {
        "users": users,
        "day": day,
        "history_days": 2,
        "landed": {"events": users * 4, "transactions": users, "erasure_requests": erasure_requests},
        "generate_s": 1.0,
        "history_s": 2.0,
        "run": {"success": True, "import_wall": 3.0, "wall": wall, "cpu": cpu, "peak_mib": peak, "steps": steps},
        "runs_wall": [wall],
        "floor": {"wall": floor, "process_wall": floor + 0.2, "cpu": floor, "peak_mib": 300.0, "rows": users},
        "floors_wall": [floor],
    }


def steps(erasure, reading, events):
    return {
        "erasure_applied": {"wall": erasure, "cpu": erasure, "peak_mib": 200.0, "rows": 0},
        "raw_erasure_requests": {"wall": reading, "cpu": reading, "peak_mib": 150.0, "rows": 3},
        "actionable_events": {"wall": events, "cpu": events, "peak_mib": 2500.0, "rows": 1000},
    }


def history_point(days, cpu, day, events):
    run = {"wall": cpu * 1.1, "cpu": cpu, "peak_mib": 400.0, "steps": steps(0.5, 0.2, cpu / 2)}
    landed = {"events": events, "transactions": 0, "erasure_requests": 0}
    return {"history_days": days, "day": day, "landed": landed, "run": run}


@pytest.fixture
def measures():
    days = [f"2026-10-{d:02d}" for d in range(1, 31)]
    storage = {
        "actionable/events": {d: [1000, 100] for d in days},  # follows activity: flat
        "goals/goal_cohort": {d: [1000 * n, 100 * n] for n, d in enumerate(days, 1)},  # cumulative
        "actionable/profiles": {d: [1000, 5000] for d in days},  # every user every day
        "actionable/user_features": {d: [9000 if d == days[-1] else 90, 5000 if d == days[-1] else 50] for d in days},
        "reports/catalog": {"-": [500, 0]},
    }
    return {
        "conditions": "cores 2, load 1.0",
        "tiny": size(1000, 20.0, 18.0, 500.0, 0.1, steps(0.5, 0.2, 1.0)),
        "sizes": [
            size(20_000, 24.0, 21.0, 900.0, 0.8, steps(0.6, 0.2, 2.0)),
            {**size(1_000_000, 60.0, 50.0, 5000.0, 2.0, steps(9.0, 0.3, 14.0)), "settings": LIMITED},
        ],
        "history": {
            "users": 5000,
            "points": [history_point(30, 10.0, days[-1], 1000), history_point(90, 13.0, days[-1], 1000)],
            "storage": storage,
            "landed_by_day": {d: 100 for d in days},
        },
    }


def test_r_and_summary(measures):
    big, tiny = measures["sizes"][1], measures["tiny"]
    assert bench_report.r_value(big, tiny) == pytest.approx((60.0 - 20.0) / 2.0)
    assert bench_report.r_value(big, tiny, "cpu") == pytest.approx((50.0 - 18.0) / 2.0)
    table = bench_report.summary_table(measures)
    assert "| 1,000,000 | 4,000,000 | 60.00 | 50.00 | 5,000 | 2.00 | 2.00 | 20.0 | 16.0 | 2GB, 2 threads |" in table
    assert "1,000 (fixed cost)" in table


def test_targets(measures):
    verdicts = {row[0]: row[1:] for row in bench_report.targets(measures)}
    names = [name for name, _ in bench_report.TARGETS]
    assert verdicts[names[0]][:2] == ["R = 20.0 (CPU: 16.0)", "missed"]
    assert "`actionable_events` 13.0" in verdicts[names[0]][2]
    assert verdicts[names[1]][1] == "missed" and "2GB" in verdicts[names[1]][2]
    assert verdicts[names[2]][1] == "missed"  # 9 s of erasure at 1M against 0.3 s of reading
    assert verdicts[names[3]][:2] == ["90 against 30 days: CPU x1.30 per landed row (x1.30 raw), 5,000 users", "missed"]
    assert verdicts[names[4]][:2] == ["2 of 5 tables grow with days x users", "missed"]  # not a snapshot's newest day
    assert "goal_cohort" in verdicts[names[4]][2] and "profiles" in verdicts[names[4]][2]
    assert verdicts[names[5]][1] == "not measured"
    measures["demo_seconds"] = 45.0
    measures["sizes"] = measures["sizes"][:1]
    verdicts = {row[0]: row[1:] for row in bench_report.targets(measures)}
    assert verdicts[names[0]][1] == "not measured"
    assert verdicts[names[2]][1] == "met"  # 0.6 s of erasure at 20k: within reading's + the step overhead
    assert verdicts[names[5]][:2] == ["45 s", "met"]


def test_markdown_and_merge(measures):
    text = bench_report.markdown(measures)
    for heading in ("### Summary", "### Targets", "### 1,000,000 users", "### The same pipeline", "### Storage"):
        assert heading in text
    merged = bench_report.merge([{"sizes": measures["sizes"][1:]}, {"size": measures["sizes"][0], "tiny": None}])
    assert [s["users"] for s in merged["sizes"]] == [20_000, 1_000_000]
