"""Time to event (assets/time_to_event.py): the Kaplan-Meier RMST against an independent walk, censoring included;
recovery of a planted change and of a null one by simulation; the goal row of a real small run against the
landing files and the answer key."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.goal_cohort import goal_to_date
from assets.pyramid_map import Campaign, Goal, Metric
from assets.statistics import Z_95
from assets.time_to_event import kaplan_meier_rmst, log_rmst_ratio, with_event_days
from tests import independent

HORIZON = 14


# --- (a) oracle: the same figures walked day by day in plain Python ------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rmst_matches_an_independent_kaplan_meier(seed):
    rng = np.random.default_rng(seed)
    n = 60
    times = rng.geometric(0.12, n) - 1
    followed = rng.integers(0, 20, n)
    events = times <= followed
    observed = np.where(events, times, followed)
    ours = kaplan_meier_rmst(observed, events, HORIZON)
    theirs = independent.kaplan_meier_rmst(list(zip(observed.tolist(), events.tolist(), strict=True)), HORIZON)
    assert ours.rmst == pytest.approx(theirs["rmst"], abs=1e-12)
    assert ours.variance == pytest.approx(theirs["variance"], abs=1e-12)
    assert ours.share_within == pytest.approx(theirs["share_within"], abs=1e-12)
    assert ours.users == n and ours.censored == int((~events & (observed < HORIZON - 1)).sum())


def test_rmst_by_hand():
    # times 0e 1c 2e 3e 5c 5e 8e 10c, horizon 6: S = 7/8, 7/8, 35/48, 7/12, 7/12, 7/16
    summary = kaplan_meier_rmst(np.array([0, 1, 2, 3, 5, 5, 8, 10]), np.array([1, 0, 1, 1, 0, 1, 1, 0], bool), 6)
    assert summary.rmst == pytest.approx(7 / 8 + 7 / 8 + 35 / 48 + 7 / 12 + 7 / 12 + 7 / 16)
    assert summary.share_within == pytest.approx(9 / 16)
    assert (summary.users, summary.events, summary.censored) == (8, 4, 1)


def test_no_censoring_gives_the_mean_of_the_restricted_times():
    times = np.array([0, 3, 5, 20, 2, 9])
    summary = kaplan_meier_rmst(times, np.ones(6, bool), 10)
    assert summary.rmst == pytest.approx(np.minimum(times, 10).mean())


# --- (b) recovery by simulation -------------------------------------------------------------------

SIMULATIONS, USERS, HOLDOUT, MEAN_DAYS, FOLLOW_UP = 400, 600, 0.2, 4.0, 30


def _true_rmst(rate: float, horizon: int) -> float:
    """E[min(T, H)] of T = floor(X), X ~ Exp(rate): sum_{t < H} P(X >= t + 1)."""
    return sum(math.exp(-rate * (t + 1)) for t in range(horizon))


def _time_ratio_for(change: float) -> float:
    """The accelerated-failure time ratio whose RMST changes by `change` (bisection)."""
    rate, low, high = 1 / MEAN_DAYS, 0.05, 1.0
    base = _true_rmst(rate, HORIZON)
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if _true_rmst(rate / middle, HORIZON) / base - 1 < change else (low, middle)
    return (low + high) / 2


def _coverage(change: float, seed: int) -> float:
    """Share of simulated campaigns whose 95% interval of RMST_t / RMST_h - 1 covers the planted `change`."""
    rng = np.random.default_rng(seed)
    time_ratio = _time_ratio_for(change) if change else 1.0
    covered = 0
    for _ in range(SIMULATIONS):
        holdout = rng.random(USERS) < HOLDOUT
        latent = np.floor(rng.exponential(MEAN_DAYS, USERS) * np.where(holdout, 1.0, time_ratio)).astype(int)
        followed = rng.integers(0, FOLLOW_UP, USERS)  # entered on different days: censored at different times
        events = latent <= followed
        times = np.where(events, latent, followed)
        arms = [kaplan_meier_rmst(times[mask], events[mask], HORIZON) for mask in (~holdout, holdout)]
        log_rr, se = log_rmst_ratio(*arms)
        low, high = math.exp(log_rr - Z_95 * se) - 1, math.exp(log_rr + Z_95 * se) - 1
        covered += low <= change <= high
    return covered / SIMULATIONS


def test_the_planted_time_ratio_changes_the_rmst_by_20_percent():
    ratio = _time_ratio_for(-0.2)
    rate = 1 / MEAN_DAYS
    assert _true_rmst(rate / ratio, HORIZON) / _true_rmst(rate, HORIZON) == pytest.approx(0.8, abs=1e-12)


@pytest.mark.parametrize("change", [-0.2, 0.0], ids=["planted_minus_20pct", "null"])
def test_interval_covers_the_planted_change_about_95_percent(change):
    coverage = _coverage(change, seed=14)
    assert 0.92 <= coverage <= 0.98, coverage


# --- the goal row through the decisions ----------------------------------------------------------

DS = date(2026, 10, 20)
METRICS = {
    "ttv": Metric("ttv", "", 1, "deposits > 0", kind="time_to_event", horizon_days=HORIZON),
    "unsubscribe_rate": Metric("unsubscribe_rate", "", 1, "unsubscribes > 0"),
}
GOAL = Goal("time_to_value", "engagement", "ttv", "welcome", -0.2, ("unsubscribe_rate",))
CAMPAIGN = Campaign("welcome", "", ("new",), ("tp",), 1, 0.2)


def _cohort(times: dict[str, tuple[str, int, bool]]) -> pa.Table:
    """goal_cohort rows of the time-to-event goal: user -> (arm, days, reached), anchored 20 days before DS - days."""
    rows = []
    for user, (arm, days, reached) in times.items():
        anchor = DS - timedelta(days=days if not reached else days + 3)
        rows.append(
            {
                "goal_id": GOAL.id,
                "metric": "ttv",
                "campaign_id": "welcome",
                "arm": arm,
                "user_id": user,
                "entry_ds": anchor,
                "pre_days": 0,
                "pre_successes": 0,
                "exposed_ds": None,
                "anchor_ds": anchor,
                "event_ds": anchor + timedelta(days=days) if reached else None,
            }
        )
    frame = pl.DataFrame(rows).with_columns(ds=pl.lit(DS), exposed_ds=pl.lit(None, pl.Date))
    return frame.with_columns(pl.col("anchor_ds", "event_ds").cast(pl.Date)).to_arrow()


def test_goal_row_is_the_rmst_comparison_with_direction_decrease():
    rng = np.random.default_rng(3)
    times = {}
    for k in range(2000):
        arm = "holdout" if k % 5 == 0 else "treatment"
        days = int(rng.geometric(0.5 if arm == "treatment" else 0.2)) - 1
        times[f"u{k:05d}"] = (arm, days, True)
    outcomes = pa.table(
        {
            "goal_id": [GOAL.id] * 2,
            "metric": ["unsubscribe_rate"] * 2,
            "campaign_id": ["welcome"] * 2,
            "arm": ["treatment", "holdout"],
            "user_id": ["u00001", "u00000"],
            "days": [5, 5],
            "successes": [0, 0],
        }
    )
    rows = goal_to_date(outcomes, DS, [GOAL], [CAMPAIGN], _cohort(times), METRICS).to_pylist()
    goal = next(r for r in rows if r["kind"] == "goal")
    arms = {
        arm: kaplan_meier_rmst(
            np.array([d for a, d, _ in times.values() if a == arm]),
            np.ones(sum(a == arm for a, _, _ in times.values()), bool),
            HORIZON,
        )
        for arm in ("treatment", "holdout")
    }
    assert goal["treatment_value"] == pytest.approx(arms["treatment"].rmst)
    assert goal["holdout_value"] == pytest.approx(arms["holdout"].rmst)
    assert goal["lift"] == pytest.approx(arms["treatment"].rmst / arms["holdout"].rmst - 1)
    assert goal["treatment_share_within"] == pytest.approx(arms["treatment"].share_within)
    assert goal["treatment_censored"] == 0 and goal["treatment_users"] + goal["holdout_users"] == 2000
    assert goal["ci_high"] < 0 and goal["lift"] < -0.2 and goal["status"] == "met"
    assert goal["cuped_theta"] is None


def test_cohort_anchors_on_signup_in_history_and_finds_the_first_event():
    cohort = pa.table(
        {
            "ds": [DS] * 3,
            "goal_id": [GOAL.id] * 3,
            "metric": ["ttv"] * 3,
            "campaign_id": ["welcome"] * 3,
            "arm": ["treatment", "holdout", "treatment"],
            "user_id": ["a", "b", "c"],
            "entry_ds": [DS] * 3,
            "pre_days": [0] * 3,
            "pre_successes": [0] * 3,
            "exposed_ds": pa.array([None] * 3, pa.date32()),
        }
    )
    activity = pa.table(
        {
            "user_id": ["a", "a", "b", "c"],
            "activity_date": [DS - timedelta(days=3), DS - timedelta(days=1), DS - timedelta(days=5), DS],
            "deposits": [0, 2, 1, 1],
        }
    )
    signups = pa.table(
        {"user_id": ["a", "b", "c"], "signup_ds": [DS - timedelta(days=4), DS - timedelta(days=3), date(2020, 1, 1)]}
    )
    start = DS - timedelta(days=10)
    table = with_event_days(cohort, None, activity, [GOAL], METRICS, signups, DS, start)
    got = {r["user_id"]: (r["anchor_ds"], r["event_ds"]) for r in table.to_pylist()}
    # a: first deposit 3 days after signup; b: deposited only before signup, censored; c: signed up before history
    assert got == {
        "a": (DS - timedelta(days=4), DS - timedelta(days=1)),
        "b": (DS - timedelta(days=3), None),
        "c": (None, None),
    }


# --- (a, c) a real small run: the landing files and the answer key -------------------------------


def test_real_run_matches_the_landing_files_and_covers_the_truth(run):
    ds = run.days[-1]
    goal = next(g for g in run.pyramid_map.goals if run.pyramid_map.metrics[g.metric].kind == "time_to_event")
    metric = run.pyramid_map.metrics[goal.metric]
    campaign = run.pyramid_map.campaign(goal.campaign)
    rows = pq.read_table(run.lake.partition_file("goals", "goal_metrics", ds)).to_pylist()
    row = next(r for r in rows if r["goal_id"] == goal.id and r["kind"] == "goal" and r["window"] == "to_date")
    cohort = pq.read_table(run.lake.partition_file("goals", "goal_cohort", ds)).to_pylist()
    users = {r["user_id"] for r in cohort if r["goal_id"] == goal.id and r["metric"] == goal.metric}
    landing = run.lake.landing
    signup = _signup_days(landing, ds)
    anchors = {u: signup[u] for u in users if u in signup and signup[u] >= run.pyramid_map.start_date}
    followed = independent.first_event_times(independent.deposit_days(landing, known_on=ds), anchors, ds)
    arms = {
        arm: independent.kaplan_meier_rmst(
            [t for u, t in followed.items() if independent.is_holdout(campaign.id, u, campaign.holdout) == held],
            metric.horizon_days,
        )
        for arm, held in (("treatment", False), ("holdout", True))
    }
    assert row["treatment_users"] + row["holdout_users"] == len(followed) > 50
    assert row["treatment_value"] == pytest.approx(arms["treatment"]["rmst"], abs=1e-9)
    assert row["holdout_value"] == pytest.approx(arms["holdout"]["rmst"], abs=1e-9)
    assert row["holdout_share_within"] == pytest.approx(arms["holdout"]["share_within"], abs=1e-9)
    se = math.sqrt(sum(a["variance"] / a["rmst"] ** 2 for a in arms.values()))
    width = math.log(1 + row["ci_high_fixed"]) - math.log(1 + row["ci_low_fixed"])
    assert width == pytest.approx(2 * Z_95 * se, rel=1e-9)
    censored = sum(1 for days, reached in followed.values() if not reached and days < metric.horizon_days - 1)
    assert row["treatment_censored"] + row["holdout_censored"] == censored > 0
    truth = json.loads((landing / "_truth" / "planted_truth.json").read_text())["campaigns"][campaign.id]
    assert row["ci_low_fixed"] <= truth["time_to_event"]["rmst_relative_change"] <= row["ci_high_fixed"]


def _signup_days(landing, ds: date) -> dict[str, date]:
    """The UTC date of each user's signup_at, from the profiles landed up to ds (the latest row wins)."""
    days = {}
    for day in independent.landing_days(landing):
        if day > ds:
            continue
        for r in independent._csv_rows(landing, "profiles", day):
            when = independent.parse_time(r.get("signup_at"))
            if r.get("user_id") and when is not None:
                days[r["user_id"]] = when.astimezone(UTC).date()
    return days
