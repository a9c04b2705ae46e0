"""The whole pyramid through Dagster on a small generated sample, checked against a second, independent
computation from the landing files (tests/independent.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from assets.catalog import build_catalog
from assets.lake import Lake
from pipelines.runner import QUIET
from tests import independent
from tests.pyramid_run import PII, _lake_rows  # the fixture `run` is in tests/conftest.py


def test_every_day_succeeds_and_every_blocking_check_passes(run):
    for day, result in run.results.items():
        assert result.success, day
        evaluations = result.get_asset_check_evaluations()
        accounting = [e for e in evaluations if e.check_name == "rows_accounted_for"]
        assert len(accounting) == 3, day
        assert all(e.passed for e in accounting), day


def test_goal_metrics_match_an_independent_computation(run):
    landing = run.lake.landing
    goal = next(g for g in run.pyramid_map.goals if g.metric == "deposit_rate")
    campaign = run.pyramid_map.campaign(goal.campaign)
    for day in run.days[1:]:
        # the audience as it was sent (later erasures removed users from the lake's copy), less the users
        # erased by the day measured: the day's run erases them before it measures
        erased = run.erased(through=day)
        audience = [u for u in run.audience(day - timedelta(days=1), campaign.id) if u not in erased]
        deposited = {user for user, d in independent.deposit_days(landing, day) if d == day}
        expected = independent.arm_successes(audience, campaign.id, campaign.holdout, deposited)
        [row] = _lake_rows(
            run.lake,
            "goals",
            "goal_metrics",
            f"WHERE ds = DATE '{day}' AND goal_id = '{goal.id}' AND metric = '{goal.metric}' AND \"window\" = 'day'",
        )
        assert {k: row[k] for k in expected} == expected, day
        treatment = expected["treatment_successes"] / expected["treatment_users"]
        holdout = expected["holdout_successes"] / expected["holdout_users"]
        assert row["treatment_value"] == pytest.approx(treatment)
        assert row["holdout_value"] == pytest.approx(holdout)
        if holdout:
            assert row["lift"] == pytest.approx(treatment / holdout - 1)


def test_goal_to_date_counts_users_as_clusters(run):
    shares = [g for g in run.pyramid_map.goals if run.pyramid_map.metrics[g.metric].kind == "share"]
    erased_measured = sum(_check_goal_to_date(run, goal) for goal in shares)  # ratio: tests/test_metric_kinds.py
    assert erased_measured > 0  # the sample erases users who had been measured: that path is exercised


def _check_goal_to_date(run, goal) -> int:
    """Check one goal's to_date row (intent to treat, late activity within the lookback, CUPED) against the
    landing files; return the measured days of the users erased by the last day."""
    campaign = run.pyramid_map.campaign(goal.campaign)
    lookback, first = run.pyramid_map.late_lookback_days, run.pyramid_map.start_date
    rows = _lake_rows(run.lake, "goals", "goal_metrics", f"WHERE goal_id = '{goal.id}' AND metric = '{goal.metric}'")
    last = run.days[-1]
    [to_date] = [r for r in rows if r["window"] == "to_date" and r["ds"] == last]

    # per user, from the landing files: entry on the first day d whose audience as sent (as of d - 1) holds them,
    # then every day to the last, with a success on d when the activity landed by min(last, d + lookback);
    # users erased by the last day are gone from the cohort, the per-user outcomes and the to_date row
    known = {d: independent.metric_days(run.lake.landing, d, goal.metric) for d in run.days}
    audiences = {
        d - timedelta(days=1): dict.fromkeys(run.audience(d - timedelta(days=1), campaign.id), "-")
        for d in run.days[1:]
    }
    success_rows = [(u, d, landed) for landed, pairs in known.items() for u, d in pairs]
    erased = run.erased()
    arm_of = {"holdout": [], "treatment": []}
    measured = independent.itt_user_outcomes(audiences, success_rows, last, lookback)["-"]
    settled = independent.itt_user_outcomes(audiences, success_rows, last - timedelta(days=lookback), lookback)["-"]
    entry = {u: last - timedelta(days=n - 1) for u, (n, _) in measured.items()}
    for user, (n, x) in sorted(measured.items()):
        if user in erased:
            continue
        pre = [entry[user] - timedelta(days=k) for k in range(1, 15) if entry[user] - timedelta(days=k) >= first]
        c = sum((user, d) in known[entry[user]] for d in pre) / len(pre) if pre else 0.0
        arm = "holdout" if independent.is_holdout(campaign.id, user, campaign.holdout) else "treatment"
        arm_of[arm].append((n, x, c))
    for arm, users in arm_of.items():
        assert to_date[f"{arm}_users"] == len(users)
        assert to_date[f"{arm}_user_days"] == sum(n for n, _, _ in users)
        assert to_date[f"{arm}_successes"] == sum(x for _, x, _ in users)
    plain = {arm: [(n, x) for n, x, _ in users] for arm, users in arm_of.items()}
    lift, _, _ = independent.cluster_relative_lift(plain["treatment"], plain["holdout"])
    assert to_date["lift_unadjusted"] == pytest.approx(lift)
    # the decision's interval: the confidence sequence at the row's level (Holm within the campaign), on the
    # CUPED-adjusted estimate; the unadjusted one beside it
    assert to_date["alpha"] in [pytest.approx(0.05 / k) for k in (1, 2)]
    sequential = independent.sequential_relative_interval(plain["treatment"], plain["holdout"], to_date["alpha"])
    assert (to_date["ci_low_unadjusted"], to_date["ci_high_unadjusted"]) == (
        pytest.approx(sequential[0]),
        pytest.approx(sequential[1]),
    )
    if to_date["cuped_theta"]:
        cuped = independent.cuped_relative_lift(arm_of["treatment"], arm_of["holdout"])
        assert (to_date["lift"], to_date["ci_low_fixed"], to_date["ci_high_fixed"]) == tuple(map(pytest.approx, cuped))
    outcomes = _lake_rows(
        run.lake,
        "goals",
        "goal_user_outcomes",
        f"WHERE ds = DATE '{last}' AND goal_id = '{goal.id}' AND metric = '{goal.metric}'",
    )
    expected = {u: [n, x] for u, (n, x) in settled.items() if u not in erased}
    assert {r["user_id"]: [r["days"], r["successes"]] for r in outcomes} == expected
    return sum(n for u, (n, _) in measured.items() if u in erased)


def test_north_star_matches_an_independent_computation(run):
    for day in (run.days[2], run.days[-1]):
        [row] = _lake_rows(run.lake, "goals", "north_star", f"WHERE ds = DATE '{day}'")
        assert row["value"] == pytest.approx(independent.weekly_active_share(run.lake.landing, day)), day


def test_rerunning_a_partition_changes_nothing(run):
    """Rule 3 under rule 7: the first re-run of a day that users asked since to be erased from recomputes
    that day without them (its raw rows are re-landed from the landing files and erased again), so only
    that day's aggregates may change; a second re-run changes nothing at all."""
    day = run.days[3]
    assert any(r["ds"] > day for r in _lake_rows(run.lake, "raw", "erasure_requests") if r["user_id"])
    before = _snapshot(run.lake)
    result = run.job.execute_in_process(partition_key=day.isoformat(), instance=run.instance, run_config=QUIET)
    assert result.success
    after = _snapshot(run.lake)
    assert before.keys() == after.keys()
    changed = [path for path in before if not before[path].equals(after[path])]
    assert all(f"ds={day}" in path for path in changed), changed
    per_user = [p for p in changed if "user_id" in after[p].column_names or "payload" in after[p].column_names]
    aggregates = {
        "segment_summary",
        "segment_overlap",
        "segment_baselines",
        "goal_metrics",
        "north_star",
        "north_star_contributions",
    }
    assert {Path(p).parent.parent.name for p in changed} - {Path(p).parent.parent.name for p in per_user} <= aggregates
    result = run.job.execute_in_process(partition_key=day.isoformat(), instance=run.instance, run_config=QUIET)
    assert result.success
    again = _snapshot(run.lake)
    assert [path for path in after if not after[path].equals(again[path])] == []


def test_rerunning_the_last_day_changes_no_file(run):
    before = _snapshot(run.lake)
    result = run.job.execute_in_process(partition_key=run.days[-1].isoformat(), instance=run.instance, run_config=QUIET)
    assert result.success
    after = _snapshot(run.lake)
    assert before.keys() == after.keys()
    assert [path for path in before if not before[path].equals(after[path])] == []


def _snapshot(lake: Lake) -> dict:
    return {str(p.relative_to(lake.root)): pq.read_table(p) for p in sorted((lake.root / "lake").rglob("*.parquet"))}


def test_no_pii_above_the_raw_layer(run):
    for path in (run.lake.root / "lake").rglob("*.parquet"):
        if path.relative_to(run.lake.root / "lake").parts[0] == "raw":
            continue
        assert not set(PII) & set(pq.read_schema(path).names), path
    con = duckdb.connect(str(run.lake.warehouse), read_only=True)
    columns = {row[0] for row in con.sql("SELECT column_name FROM duckdb_columns()").fetchall()}
    assert not set(PII) & columns


def test_unconsented_users_are_never_targeted(run):
    profiles = run.glob("actionable", "profiles")
    for layer, table in (("segments", "segment_membership"), ("campaigns", "audiences")):
        targeted_without_consent = duckdb.sql(f"""
            SELECT count(*) FROM read_parquet('{run.glob(layer, table)}', hive_partitioning = true) AS m
            JOIN read_parquet('{profiles}', hive_partitioning = true) AS p USING (ds, user_id)
            WHERE p.consent_personalization IS NOT TRUE
        """).fetchall()[0][0]
        assert targeted_without_consent == 0, table
    unconsented = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{profiles}', hive_partitioning = true) "
        "WHERE consent_personalization IS NOT TRUE"
    ).fetchall()[0][0]
    assert unconsented > 0  # the sample has users to protect


def test_catalog_answers_from_another_process_while_it_is_rebuilt(run):
    query = "import duckdb; c = duckdb.connect(sys.argv[1], read_only=True); print(len(c.sql('select * from segment_summary').fetchall()))"  # noqa: E501
    holder = duckdb.connect(str(run.lake.warehouse), read_only=True)
    build_catalog(run.lake, [t.id for t in run.pyramid_map.touchpoints])  # an analyst keeps the old one open
    assert holder.sql("SELECT count(*) FROM segment_summary").fetchall()[0][0] > 0
    output = subprocess.run(
        [sys.executable, "-c", "import sys; " + query, str(run.lake.warehouse)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert int(output) == len(run.pyramid_map.segments.definitions) * len(run.days)


def test_every_touchpoint_export_respects_arm_priority_and_cap(run):
    for touchpoint in run.pyramid_map.touchpoints:
        rows = _lake_rows(run.lake, "touchpoints", touchpoint.id)
        per_day_user = {(r["ds"], r["user_id"]) for r in rows}
        assert len(per_day_user) == len(rows), touchpoint.id  # one campaign per user and day
        for r in rows:
            campaign = run.pyramid_map.campaign(r["campaign_id"])
            assert not independent.is_holdout(campaign.id, r["user_id"], campaign.holdout)
