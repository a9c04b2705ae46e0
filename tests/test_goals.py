import math
from datetime import date, timedelta

import polars as pl
import pyarrow as pa
import pytest

from assets.goals import GOAL_METRICS_SCHEMA, goal_day_metrics, goal_to_date, metric_indicator_sql, with_statistics
from assets.north_star import CONTRIBUTIONS_SCHEMA, NORTH_STAR_SCHEMA, north_star, north_star_contributions
from assets.pyramid_map import Campaign, FrequencyCap, Goal, Metric
from assets.segments import sandboxed_connection
from assets.sql_guard import UnsafeExpression

DS = date(2026, 10, 10)
Z = 1.959963984540054
METRICS = {
    "deposit_rate": Metric("deposit_rate", "", 1, "deposits > 0"),
    "unsubscribe_rate": Metric("unsubscribe_rate", "", 1, "unsubscribes > 0"),
    "weekly_active_share": Metric("weekly_active_share", "", 7, "sessions > 0"),
}
CAMPAIGNS = [
    Campaign("even", "", ("s",), ("t",), 10, 1 / 3, FrequencyCap(1, 1)),
    Campaign("skewed", "", ("s",), ("t",), 10, 0.2, FrequencyCap(1, 1)),
]
GOALS = [
    Goal("grow_deposits", "engagement", "deposit_rate", "even", 0.15, ("unsubscribe_rate",)),
    Goal("skewed_deposits", "engagement", "deposit_rate", "skewed", 0.15, ()),
]


def daily(rows: list[tuple[str, date, int, int, int]]) -> pa.Table:
    """user_daily rows: (user_id, activity_date, deposits, unsubscribes, sessions)."""
    return pa.table({
        "user_id": [r[0] for r in rows],
        "activity_date": pa.array([r[1] for r in rows], pa.date32()),
        "deposits": [r[2] for r in rows],
        "unsubscribes": [r[3] for r in rows],
        "sessions": [r[4] for r in rows],
    })


def audience(campaign_id: str, treatment: list[str], holdout: list[str]) -> pa.Table:
    users = treatment + holdout
    return pa.table({
        "as_of": [DS - timedelta(days=1)] * len(users),
        "campaign_id": [campaign_id] * len(users),
        "user_id": users,
        "arm": ["treatment"] * len(treatment) + ["holdout"] * len(holdout),
    })


TREATED = [f"t{n:03d}" for n in range(100)]
HELD = [f"h{n:03d}" for n in range(50)]


def experiment_activity() -> pa.Table:
    yesterday = DS - timedelta(days=1)
    rows = (
        [(u, DS, 1, 0, 1) for u in TREATED[:30]]              # 30 treatment depositors today
        + [(u, DS, 0, 0, 1) for u in TREATED[:10]]            # a second landing partition of the same day
        + [(u, yesterday, 1, 0, 1) for u in TREATED[30:40]]   # deposited yesterday only: not today's success
        + [(u, DS, 0, 1, 1) for u in TREATED[50:55]]          # 5 treatment unsubscribes
        + [(u, DS, 1, 0, 1) for u in HELD[:10]]               # 10 holdout depositors
        + [("h040", DS, 0, 1, 0), ("outsider", DS, 1, 1, 1)]  # 1 holdout unsubscribe; a user in no audience
    )
    return daily(rows)


def log_ratio_ci(st, nt, sh, nh):
    se = math.sqrt(1 / st - 1 / nt + 1 / sh - 1 / nh)
    centre = math.log((st / nt) / (sh / nh))
    return math.exp(centre - Z * se) - 1, math.exp(centre + Z * se) - 1


def two_proportion_p(st, nt, sh, nh):
    pooled = (st + sh) / (nt + nh)
    z = (st / nt - sh / nh) / math.sqrt(pooled * (1 - pooled) * (1 / nt + 1 / nh))
    return math.erfc(abs(z) / math.sqrt(2))


def test_metric_indicator_zero_fills_users_without_rows():
    con = sandboxed_connection()
    con.register("users", pa.table({"user_id": ["a", "b", "c"]}))
    con.register("activity", daily([("a", DS, 1, 0, 0), ("a", DS - timedelta(days=1), 1, 0, 0),
                                    ("c", DS - timedelta(days=2), 3, 0, 0)]))
    two_day = Metric("two_deposits", "", 2, "deposits >= 2")
    no_deposit = Metric("no_deposit", "", 2, "deposits = 0")
    columns = ["user_id", "activity_date", "deposits", "unsubscribes", "sessions"]

    def successes(metric):
        sql = metric_indicator_sql(metric, DS, columns, users="users", activity="activity")
        return dict(con.sql(f"SELECT user_id, success FROM ({sql}) ORDER BY user_id").fetchall())

    assert successes(two_day) == {"a": True, "b": False, "c": False}  # c's deposits fall outside the window
    assert successes(no_deposit) == {"a": False, "b": True, "c": True}


def test_goal_day_metrics_against_plain_math():
    audiences = pa.concat_tables([audience("even", TREATED, HELD), audience("skewed", TREATED, HELD)])
    result = goal_day_metrics(audiences, experiment_activity(), GOALS, METRICS, CAMPAIGNS, DS)

    assert result.schema == GOAL_METRICS_SCHEMA
    rows = {(r["goal_id"], r["metric"]): r for r in result.to_pylist()}
    assert list(rows) == [("grow_deposits", "deposit_rate"), ("grow_deposits", "unsubscribe_rate"),
                          ("skewed_deposits", "deposit_rate")]

    goal = rows[("grow_deposits", "deposit_rate")]
    assert (goal["ds"], goal["kind"], goal["campaign_id"], goal["window"]) == (DS, "goal", "even", "day")
    assert (goal["treatment_users"], goal["holdout_users"]) == (100, 50)
    assert (goal["treatment_successes"], goal["holdout_successes"]) == (30, 10)
    assert goal["treatment_value"] == pytest.approx(0.3)
    assert goal["holdout_value"] == pytest.approx(0.2)
    assert goal["lift"] == pytest.approx(0.5)
    ci_low, ci_high = log_ratio_ci(30, 100, 10, 50)
    assert (goal["ci_low"], goal["ci_high"]) == (pytest.approx(ci_low), pytest.approx(ci_high))
    assert (ci_low, ci_high) == (pytest.approx(-0.20114, abs=1e-5), pytest.approx(1.81653, abs=1e-5))
    assert goal["p_value"] == pytest.approx(two_proportion_p(30, 100, 10, 50))
    assert goal["p_value"] == pytest.approx(0.19169, abs=1e-5)
    assert goal["srm_p_value"] == pytest.approx(1.0)  # 100 : 50 is exactly 2/3 : 1/3
    assert goal["srm_ok"] is True
    assert goal["target"] == 0.15
    assert goal["status"] == "inconclusive"  # CI spans 0 and the target

    guardrail = rows[("grow_deposits", "unsubscribe_rate")]
    assert (guardrail["kind"], guardrail["target"]) == ("guardrail", None)
    assert (guardrail["treatment_successes"], guardrail["holdout_successes"]) == (5, 1)
    assert guardrail["lift"] == pytest.approx(1.5)
    assert guardrail["ci_low"] == pytest.approx(log_ratio_ci(5, 100, 1, 50)[0])
    assert guardrail["status"] == "ok"  # not significantly worse

    skewed = rows[("skewed_deposits", "deposit_rate")]
    # expected 120 : 30 for a 20% holdout: chi2 = 20^2/120 + 20^2/30 = 16.667, 1 degree of freedom
    assert skewed["srm_p_value"] == pytest.approx(math.erfc(math.sqrt(50 / 3 / 2)))
    assert skewed["srm_p_value"] == pytest.approx(4.4557e-5, rel=1e-4)
    assert (skewed["srm_ok"], skewed["status"]) == (False, "srm_fail")


def test_goal_day_metrics_without_yesterdays_audience_is_no_data():
    result = goal_day_metrics(None, experiment_activity(), GOALS, METRICS, CAMPAIGNS, DS).to_pylist()
    assert [r["status"] for r in result] == ["no_data"] * 3
    assert {(r["treatment_users"], r["holdout_users"], r["lift"], r["srm_ok"]) for r in result} == {(0, 0, None, None)}


def test_unsafe_metric_condition_is_refused():
    metrics = {**METRICS, "deposit_rate": Metric("deposit_rate", "", 1, "deposits > 0 OR EXISTS (SELECT 1)")}
    with pytest.raises(UnsafeExpression, match="metric 'deposit_rate'"):
        goal_day_metrics(audience("even", TREATED, HELD), experiment_activity(), GOALS[:1], metrics, CAMPAIGNS, DS)


def counts(**columns) -> pl.DataFrame:
    frame = pl.DataFrame(columns)
    return frame.with_columns(
        srm_treatment=pl.col("treatment_users").cast(pl.Float64),
        srm_holdout=pl.col("holdout_users").cast(pl.Float64),
    )


def test_status_rules():
    cases = {
        # name: (kind, target, n_t, s_t, n_h, s_h, holdout_share)
        "met": ("goal", 0.1, 1000, 300, 1000, 200, 0.5),
        "below_target": ("goal", 0.15, 10000, 2100, 10000, 2000, 0.5),   # ci_high 0.109 < 0.15
        "unclear": ("goal", 0.15, 100, 30, 50, 10, 1 / 3),
        "srm": ("goal", 0.1, 1000, 300, 500, 100, 0.5),
        "empty_arm": ("goal", 0.1, 1000, 300, 0, 0, 0.5),
        "worse": ("guardrail", None, 1000, 100, 1000, 50, 0.5),
        "same": ("guardrail", None, 1000, 50, 1000, 50, 0.5),
        "worse_from_zero": ("guardrail", None, 1000, 50, 1000, 0, 0.5),
    }
    names = list(cases)
    frame = counts(
        name=names,
        kind=[cases[n][0] for n in names],
        target=pl.Series([cases[n][1] for n in names], dtype=pl.Float64),
        treatment_users=[cases[n][2] for n in names],
        treatment_successes=[cases[n][3] for n in names],
        holdout_users=[cases[n][4] for n in names],
        holdout_successes=[cases[n][5] for n in names],
        holdout_share=[cases[n][6] for n in names],
    )
    result = {r["name"]: r for r in with_statistics(frame).to_dicts()}

    assert {n: r["status"] for n, r in result.items()} == {
        "met": "met", "below_target": "not_met", "unclear": "inconclusive", "srm": "srm_fail",
        "empty_arm": "no_data", "worse": "breached", "same": "ok", "worse_from_zero": "breached",
    }
    assert result["below_target"]["ci_high"] == pytest.approx(log_ratio_ci(2100, 10000, 2000, 10000)[1])
    assert result["same"]["p_value"] == pytest.approx(1.0)
    # zero holdout successes: lift undefined, interval by adding 0.5 to every cell (s + 0.5, n + 1)
    assert result["worse_from_zero"]["lift"] is None
    assert result["worse_from_zero"]["ci_low"] == pytest.approx(log_ratio_ci(50.5, 1001, 0.5, 1001)[0])


def day_row(ds, goal_id, metric, campaign_id, n_t, n_h, s_t, s_h, window="day"):
    return {"ds": ds, "goal_id": goal_id, "metric": metric, "campaign_id": campaign_id, "window": window,
            "treatment_users": n_t, "holdout_users": n_h, "treatment_successes": s_t, "holdout_successes": s_h}


def test_goal_to_date_sums_user_days():
    day1, day2 = DS - timedelta(days=1), DS
    rows = pa.Table.from_pylist([
        day_row(day1, "grow_deposits", "deposit_rate", "even", 130, 70, 39, 14),
        day_row(day2, "grow_deposits", "deposit_rate", "even", 130, 70, 26, 21),
        day_row(day1, "grow_deposits", "deposit_rate", "old_campaign", 999, 999, 999, 0),  # not this campaign
        day_row(DS + timedelta(days=1), "grow_deposits", "deposit_rate", "even", 999, 999, 999, 0),  # after ds
        day_row(day1, "grow_deposits", "deposit_rate", "even", 999, 999, 999, 0, window="to_date"),
    ])
    result = goal_to_date(rows, DS, GOALS[:1], CAMPAIGNS)

    assert result.schema == GOAL_METRICS_SCHEMA
    goal, guardrail = result.to_pylist()
    assert (goal["metric"], goal["window"], goal["ds"]) == ("deposit_rate", "to_date", DS)
    assert (goal["treatment_users"], goal["holdout_users"]) == (260, 140)
    assert (goal["treatment_successes"], goal["holdout_successes"]) == (65, 35)
    assert (goal["treatment_value"], goal["holdout_value"], goal["lift"]) == (0.25, 0.25, pytest.approx(0.0))
    assert goal["ci_low"] == pytest.approx(log_ratio_ci(65, 260, 35, 140)[0])
    # sample ratio on the mean day (130 : 70 against 2/3 : 1/3): chi2 = 0.25, not the summed 0.5
    assert goal["srm_p_value"] == pytest.approx(math.erfc(math.sqrt(0.25 / 2)))
    assert goal["ci_high"] == pytest.approx(0.4275, abs=1e-4)
    assert goal["status"] == "inconclusive"
    assert (guardrail["metric"], guardrail["treatment_users"], guardrail["status"]) == ("unsubscribe_rate", 0, "no_data")


def test_north_star_value_and_contributions():
    users = pa.table({"user_id": ["u1", "u2", "u3", "u4", "u5", "u6"]})
    activity = daily([
        ("u1", DS, 0, 0, 1),
        ("u2", DS - timedelta(days=1), 0, 0, 0),
        ("u2", DS - timedelta(days=6), 0, 0, 1),  # first day of the 7-day window
        ("u3", DS - timedelta(days=7), 0, 0, 2),  # just outside it
        ("u4", DS - timedelta(days=2), 0, 0, 0),
        ("u4", DS - timedelta(days=2), 0, 0, 0),
        ("u7", DS, 0, 0, 1),                      # not a known user
    ])
    metric = METRICS["weekly_active_share"]

    series = north_star(activity, users, metric, "engagement", DS)
    assert series.schema == NORTH_STAR_SCHEMA
    assert series.to_pylist() == [{"ds": DS, "north_star_id": "engagement", "metric": "weekly_active_share",
                                   "value": pytest.approx(2 / 6), "active_users": 2, "total_users": 6}]

    audiences = audience("even", ["u1", "u3", "u4"], ["u2", "u5"])
    contributions = north_star_contributions(audiences, activity, metric, GOALS, 6, DS)
    assert contributions.schema == CONTRIBUTIONS_SCHEMA
    even, skewed = contributions.to_pylist()
    assert (even["goal_id"], even["campaign_id"], even["treatment_users"]) == ("grow_deposits", "even", 3)
    assert (even["treatment_value"], even["holdout_value"]) == (pytest.approx(1 / 3), 0.5)
    assert even["contribution"] == pytest.approx((1 / 3 - 1 / 2) * 3 / 6)
    assert (skewed["treatment_users"], skewed["treatment_value"], skewed["contribution"]) == (0, None, None)
