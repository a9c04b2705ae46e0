"""Metric kinds and directions: ratio and mean goal rows against an independent computation, the recovery of a
planted click-through effect and of a null one, the status of a decrease goal, and the map's checks."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from assets.decisions import gate_by_guardrails, with_cluster_statistics
from assets.features import touchpoint_daily_schema
from assets.goal_cohort import goal_to_date, measure_cohort, update_goal_cohort
from assets.goals import goal_day_rows, goal_user_day_outcomes
from assets.pyramid_map import Campaign, FrequencyCap, Goal, MapError, Metric, load_map
from assets.statistics import cluster_sq_residuals
from tests import independent
from tests.pyramid_run import _lake_rows  # the fixture `run` is in tests/conftest.py

START = date(2026, 10, 1)
CAMPAIGN = Campaign("recs", "", ("s",), ("tp",), 1, 0.2, FrequencyCap(1, 1))
METRICS = {
    "ctr": Metric("ctr", "", 1, kind="ratio", numerator="clicks", denominator="impressions", touchpoint="tp"),
    "amount": Metric("amount", "", 2, kind="mean", value="deposit_amount"),
    "unsubscribe_rate": Metric("unsubscribe_rate", "", 1, "unsubscribes > 0"),
}
GOALS = [
    Goal("ctr_goal", "engagement", "ctr", "recs", 0.15, ("unsubscribe_rate",)),
    Goal("amount_goal", "engagement", "amount", "recs", 0.10, ()),
]


# --- the oracle: ratio and mean rows from synthetic user_daily and touchpoint rows ------------------------------


def synthetic(seed: int, users: int, days: int) -> tuple[pa.Table, pa.Table, dict[str, str]]:
    """user_daily (deposit_amount, unsubscribes), user_touchpoint_daily (two touchpoints) and each user's arm."""
    rng = np.random.default_rng(seed)
    arm = {f"u{i:03d}": "holdout" if rng.random() < 0.2 else "treatment" for i in range(users)}
    daily, touch = [], []
    for user in arm:
        for d in range(days):
            day = START + timedelta(days=d)
            if rng.random() < 0.6:
                daily.append((user, day, float(rng.integers(0, 3) * rng.gamma(2.0, 50.0)), int(rng.random() < 0.02)))
            for tp in ("tp", "other"):
                if rng.random() < 0.5:
                    shown = int(rng.integers(1, 5))
                    touch.append((user, day, tp, shown, int(rng.binomial(shown, 0.1)), 0, 0))
    user_daily = pa.table(
        {
            "user_id": [r[0] for r in daily],
            "activity_date": pa.array([r[1] for r in daily], pa.date32()),
            "deposit_amount": [r[2] for r in daily],
            "unsubscribes": [r[3] for r in daily],
        }
    )
    names = touchpoint_daily_schema().names
    touchpoints = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in touch], touchpoint_daily_schema())
    return user_daily, touchpoints, arm


def audiences(arm: dict[str, str], day: date) -> pa.Table:
    users = sorted(arm)
    return pa.table({"campaign_id": ["recs"] * len(users), "user_id": users, "arm": [arm[u] for u in users]})


def expected_values(user_daily: pa.Table, touchpoints: pa.Table, metric: str, day: date) -> dict[str, tuple]:
    """Per user (numerator, denominator) of the metric's window ending on `day`, in plain Python."""
    out: dict[str, list[float]] = {}
    if metric == "ctr":
        for r in touchpoints.to_pylist():
            if r["touchpoint_id"] == "tp" and r["activity_date"] == day:
                sums = out.setdefault(r["user_id"], [0.0, 0.0])
                sums[0] += r["clicks"]
                sums[1] += r["impressions"]
    else:
        for r in user_daily.to_pylist():
            if day - timedelta(days=1) <= r["activity_date"] <= day:
                out.setdefault(r["user_id"], [0.0, 1.0])[0] += r["deposit_amount"]
    return {u: tuple(v) for u, v in out.items()}


@pytest.fixture(scope="module")
def three_days():
    """Three nightly runs of the goal functions on synthetic data: (day rows of the last day, to_date rows,
    per-user (denominator, numerator) sums over the three days by metric and arm)."""
    user_daily, touchpoints, arm = synthetic(seed=3, users=300, days=5)
    days = [START + timedelta(days=d) for d in (2, 3, 4)]
    aud = audiences(arm, days[0])
    cohort, outcomes = None, None
    for ds in days:
        cohort = update_goal_cohort(cohort, aud, None, user_daily, GOALS, METRICS, ds, START)
        outcomes, state = measure_cohort(outcomes, cohort, user_daily, GOALS, METRICS, ds, START, 0, touchpoints)
    day_outcomes = goal_user_day_outcomes(aud, user_daily, GOALS, METRICS, days[-1], touchpoints)
    day_rows = goal_day_rows(day_outcomes, GOALS, [CAMPAIGN], days[-1], METRICS).to_pylist()
    to_date = goal_to_date(state, days[-1], GOALS, [CAMPAIGN], cohort, METRICS).to_pylist()
    sums: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for metric in ("ctr", "amount"):
        per_user = {u: [0.0, 0.0] for u in arm}
        for ds in days:
            for user, (x, n) in expected_values(user_daily, touchpoints, metric, ds).items():
                per_user[user][0] += n
                per_user[user][1] += x
            if metric == "amount":  # a mean: every cohort user is one unit each measured day
                for user in arm:
                    per_user[user][0] = days.index(ds) + 1
        sums[metric] = {
            a: [tuple(v) for u, v in sorted(per_user.items()) if arm[u] == a] for a in ("treatment", "holdout")
        }
    return day_rows, to_date, sums, expected_values(user_daily, touchpoints, "ctr", days[-1]), arm


def test_ratio_and_mean_to_date_rows_match_an_independent_computation(three_days):
    _, to_date, sums, _, _ = three_days
    for metric in ("ctr", "amount"):
        [row] = [r for r in to_date if r["metric"] == metric]
        treatment, holdout = sums[metric]["treatment"], sums[metric]["holdout"]
        lift, low, high = independent.cluster_relative_lift(treatment, holdout)
        assert row["metric_kind"] == METRICS[metric].kind and row["direction"] == "increase"
        assert (row["treatment_users"], row["holdout_users"]) == (len(treatment), len(holdout))
        assert row["treatment_numerator"] == pytest.approx(sum(x for _, x in treatment))
        assert row["holdout_denominator"] == pytest.approx(sum(n for n, _ in holdout))
        assert row["treatment_successes"] is None and row["treatment_user_days"] == 3 * len(treatment)
        assert row["treatment_value"] == pytest.approx(sum(x for _, x in treatment) / sum(n for n, _ in treatment))
        assert (row["lift"], row["ci_low_fixed"], row["ci_high_fixed"]) == (
            pytest.approx(lift),
            pytest.approx(low),
            pytest.approx(high),
        )
        alpha = row["alpha"]
        assert (row["ci_low"], row["ci_high"]) == tuple(
            map(pytest.approx, independent.sequential_relative_interval(treatment, holdout, alpha))
        )
    guardrail = next(r for r in to_date if r["metric"] == "unsubscribe_rate")
    assert guardrail["metric_kind"] == "share" and guardrail["direction"] == "decrease"
    assert guardrail["treatment_numerator"] == guardrail["treatment_successes"]


def test_a_ratio_day_row_counts_one_touchpoint(three_days):
    day_rows, _, _, ctr_day, arm = three_days
    [row] = [r for r in day_rows if r["metric"] == "ctr"]
    per_arm = {
        a: [(ctr_day.get(u, (0.0, 0.0))[1], ctr_day.get(u, (0.0, 0.0))[0]) for u in arm if arm[u] == a]
        for a in ("treatment", "holdout")
    }
    lift, low, high = independent.cluster_relative_lift(per_arm["treatment"], per_arm["holdout"])
    assert row["window"] == "day" and row["treatment_users"] == len(per_arm["treatment"])
    assert row["holdout_numerator"] == pytest.approx(sum(x for _, x in per_arm["holdout"]))
    assert (row["lift"], row["ci_low"], row["ci_high"]) == (
        pytest.approx(lift),
        pytest.approx(low),
        pytest.approx(high),
    )


# --- recovery: the fixed-horizon interval covers a planted click-through effect and a null one ---------------------


def simulated_ctr(seed: int, campaigns: int, users: int, effect: float) -> pl.DataFrame:
    """One to-date row per campaign: users with Beta(2, 18) click probabilities see Poisson(6) + 1 impressions
    (both arms), treated users click with probability p (1 + effect); users as clusters, the pipeline's statistics."""
    rng = np.random.default_rng(seed)
    holdout = rng.random((campaigns, users)) < 0.2
    impressions = 1 + rng.poisson(6.0, (campaigns, users))
    p = rng.beta(2, 18, (campaigns, users)) * np.where(holdout, 1.0, 1.0 + effect)
    clicks = rng.binomial(impressions, p)
    per_user = pl.DataFrame(
        {
            "campaign_id": np.repeat(np.arange(campaigns), users).astype(str),
            "arm": np.where(holdout.ravel(), "holdout", "treatment"),
            "n": impressions.ravel().astype(float),
            "x": clicks.ravel().astype(float),
        }
    )
    arms = per_user.group_by("campaign_id", "arm").agg(
        users=pl.len().cast(pl.Int64),
        user_days=pl.col("n").sum(),
        successes=pl.col("x").sum(),
        sq_residuals=cluster_sq_residuals(pl.col("x"), pl.col("n")),
    )
    stats = ("users", "user_days", "successes", "sq_residuals")
    wide = arms.pivot("arm", index="campaign_id", values=list(stats))
    wide = wide.rename({f"{c}_{a}": f"{a}_{c}" for a in ("treatment", "holdout") for c in stats})
    counts = wide.with_columns(
        goal_id=pl.col("campaign_id"),
        kind=pl.lit("goal"),
        holdout_share=pl.lit(0.2),
        target=pl.lit(0.15),
        margin=pl.lit(None, pl.Float64),
    )
    return gate_by_guardrails(with_cluster_statistics(counts))


@pytest.mark.parametrize("effect", [0.15, 0.0])
def test_the_fixed_horizon_interval_covers_the_planted_click_through(effect):
    rows = simulated_ctr(seed=14, campaigns=400, users=400, effect=effect)
    covered = rows.select(((pl.col("ci_low_fixed") <= effect) & (pl.col("ci_high_fixed") >= effect)).mean()).item()
    print(f"planted {effect:+.0%}: covered by the fixed-horizon 95% interval in {covered:.1%} of 400 campaigns")
    assert 0.92 <= covered <= 0.98


# --- direction: a decrease goal and an increase guardrail --------------------------------------------------------


def decided(lift: float, half_width: float, kind: str, direction: str, target: float | None, margin: float | None):
    """The status of one to-date row whose log-lift interval is log(1 + lift) +- half_width (fixed = primary)."""
    centre = np.log1p(lift)
    row = {
        "kind": kind,
        "direction": direction,
        "target": target,
        "margin": margin,
        "holdout_value": 0.1,
        "treatment_value": 0.1 * (1 + lift),
        "lift": lift,
        "ci_low": np.expm1(centre - half_width),
        "ci_high": np.expm1(centre + half_width),
        "treatment_users": 100,
        "holdout_users": 25,
        "srm_ok": True,
    }
    from assets.decisions import _decision_status

    frame = pl.DataFrame([row], schema_overrides={"target": pl.Float64, "margin": pl.Float64})
    return frame.select(_decision_status()).item()


@pytest.mark.parametrize(
    "lift, half, expected",
    [
        (-0.30, 0.05, "met"),  # significantly down, beyond the -20% target
        (-0.10, 0.05, "not_met"),  # significantly down, but the whole interval above the target
        (-0.25, 0.40, "inconclusive"),
        (0.10, 0.05, "not_met"),  # up: the wrong way
    ],
)
def test_a_decrease_goal_is_met_below_its_negative_target(lift, half, expected):
    assert decided(lift, half, "goal", "decrease", -0.20, None) == expected
    assert decided(-lift, half, "goal", "increase", 0.20, None) == expected  # its mirror image


@pytest.mark.parametrize(
    "lift, direction, expected",
    [
        (-0.30, "increase", "breached"),  # a metric that must not fall fell beyond its 10% margin
        (0.30, "increase", "ok"),
        (0.30, "decrease", "breached"),  # the historic guardrail: a rise beyond the margin
        (-0.30, "decrease", "ok"),
    ],
)
def test_a_guardrail_is_breached_in_its_harmful_direction(lift, direction, expected):
    assert decided(lift, 0.05, "guardrail", direction, None, 0.10) == expected


# --- the map ---------------------------------------------------------------------------------------------------


def map_problems(tmp_path: Path, metric: str, goal_target: str = "0.15") -> list[str]:
    text = (Path(__file__).parent.parent / "pyramid.yaml").read_text()
    text = text.replace("metrics:\n", f"metrics:\n  probe:\n{metric}", 1)
    text = text.replace(
        "goals:\n",
        f"goals:\n  - {{id: probe_goal, north_star: engagement, metric: probe, campaign: budget_tips, "
        f"target: {{relative_lift: {goal_target}}}}}\n",
        1,
    )
    path = tmp_path / "pyramid.yaml"
    path.write_text(text)
    with pytest.raises(MapError) as raised:
        load_map(path)
    return [p.split(": ", 1)[1] for p in raised.value.problems]


@pytest.mark.parametrize(
    "metric, target, expected",
    [
        (
            "    kind: ratio\n    numerator: clicks\n",
            "0.15",
            "metrics.probe.denominator: is required for a ratio metric (a SQL expression over the daily aggregate "
            "columns)",
        ),
        (
            '    kind: mean\n    value: deposit_amount\n    condition: "deposits > 0"\n',
            "0.15",
            "metrics.probe.condition: belongs to a share metric, not a mean one; a mean metric declares value",
        ),
        (
            "    kind: median\n    value: x\n",
            "0.15",
            "metrics.probe.kind: must be one of share, ratio, mean, time_to_event",
        ),
        ('    direction: down\n    condition: "deposits > 0"\n', "0.15", "metrics.probe.direction: must be one of"),
        (
            '    condition: "deposits > 0"\n    touchpoint: recommendations\n',
            "0.15",
            "metrics.probe.touchpoint: applies to ratio and mean metrics only, not to a share metric",
        ),
        (
            "    kind: ratio\n    numerator: clicks\n    denominator: impressions\n    touchpoint: nowhere\n",
            "0.15",
            "metrics.probe.touchpoint: unknown touchpoint 'nowhere'",
        ),
        (
            "    kind: ratio\n    numerator: clicks\n    denominator: deposits\n    touchpoint: recommendations\n",
            "0.15",
            "metrics.probe.denominator: unknown column 'deposits'; expressions may use: impressions, clicks, "
            "conversions, unsubscribes (a touchpoint's counts)",
        ),
        (
            '    condition: "deposits > 0"\n    direction: decrease\n',
            "0.15",
            "goals[0].target.relative_lift: metric 'probe' has direction decrease, so the target must be a relative "
            "fall between -1 and 0 (e.g. -0.2), got 0.15",
        ),
    ],
)
def test_map_errors_of_metric_kinds(tmp_path, metric, target, expected):
    problems = map_problems(tmp_path, metric, target)
    assert any(p.startswith(expected) for p in problems), problems


def test_the_sample_maps_click_through_goal():
    m = load_map()
    metric = m.metrics["rec_ctr"]
    assert (metric.kind, metric.numerator, metric.denominator, metric.touchpoint) == (
        "ratio",
        "clicks",
        "impressions",
        "recommendations",
    )
    goal = next(g for g in m.goals if g.metric == "rec_ctr")
    assert goal.target_relative_lift == 0.15 and m.campaign(goal.campaign).touchpoints == ("recommendations",)


# --- a real generated run: the click-through goal against the landing files ------------------------------------


def test_the_click_through_goal_of_a_generated_run(run):
    """The sample's ratio goal, campaign to date on the last day, against the landing files: per arm and user
    (intent to treat, erased users gone) clicks over impressions at the touchpoint; its fixed-horizon interval
    covers the planted effect."""
    m, landing = run.pyramid_map, run.lake.landing
    goal = next(g for g in m.goals if m.metrics[g.metric].kind == "ratio")
    metric, campaign, last = m.metrics[goal.metric], m.campaign(goal.campaign), run.days[-1]
    audiences = {
        d - timedelta(days=1): dict.fromkeys(run.audience(d - timedelta(days=1), campaign.id), "-")
        for d in run.days[1:]
    }
    clicks = independent.touchpoint_counts(landing, metric.touchpoint, "click")
    impressions = independent.touchpoint_counts(landing, metric.touchpoint, "impression")
    sums = independent.itt_user_sums(audiences, clicks, impressions, last, m.late_lookback_days)["-"]
    erased, arms = run.erased(), {"treatment": [], "holdout": []}
    for user, pair in sorted(sums.items()):
        if user not in erased:
            arms["holdout" if independent.is_holdout(campaign.id, user, campaign.holdout) else "treatment"].append(pair)
    where = (
        f"WHERE goal_id = '{goal.id}' AND metric = '{goal.metric}' AND \"window\" = 'to_date' AND ds = DATE '{last}'"
    )
    [row] = _lake_rows(run.lake, "goals", "goal_metrics", where)
    for arm, users in arms.items():
        assert row[f"{arm}_users"] == len(users)
        assert row[f"{arm}_denominator"] == pytest.approx(sum(n for n, _ in users))
        assert row[f"{arm}_numerator"] == pytest.approx(sum(x for _, x in users))
    lift, low, high = independent.cluster_relative_lift(arms["treatment"], arms["holdout"])
    assert (row["lift"], row["ci_low_fixed"], row["ci_high_fixed"]) == tuple(map(pytest.approx, (lift, low, high)))
    planted = json.loads((landing / "_truth" / "planted_truth.json").read_text())["campaigns"][campaign.id]
    print(f"click-through: lift {lift:+.1%} [{low:+.1%}, {high:+.1%}], planted {planted['relative_effect']:+.0%}")
    assert low <= planted["relative_effect"] <= high
