import math
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from assets.decisions import gate_by_guardrails, with_cluster_statistics, with_statistics
from assets.goal_cohort import (
    GOAL_COHORT_SCHEMA,
    GOAL_USER_OUTCOMES_SCHEMA,
    goal_to_date,
    measure_cohort,
    update_goal_cohort,
    update_goal_user_outcomes,
)
from assets.goals import (
    GOAL_METRICS_SCHEMA,
    GOAL_USER_DAY_SCHEMA,
    goal_day_metrics,
    goal_day_rows,
    goal_user_day_outcomes,
)
from assets.lake import Lake, write_parquet_atomic
from assets.metrics import metric_indicator_sql
from assets.north_star import CONTRIBUTIONS_SCHEMA, NORTH_STAR_SCHEMA, north_star, north_star_contributions
from assets.pyramid_map import Campaign, FrequencyCap, Goal, Metric
from assets.sql_guard import UnsafeExpression, sandboxed_connection
from pipelines.layers import MissingPartition
from pipelines.layers.goals import USER_OUTCOMES, previous_stored
from tests import independent

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
    return pa.table(
        {
            "user_id": [r[0] for r in rows],
            "activity_date": pa.array([r[1] for r in rows], pa.date32()),
            "deposits": [r[2] for r in rows],
            "unsubscribes": [r[3] for r in rows],
            "sessions": [r[4] for r in rows],
        }
    )


def audience(campaign_id: str, treatment: list[str], holdout: list[str]) -> pa.Table:
    users = treatment + holdout
    return pa.table(
        {
            "as_of": [DS - timedelta(days=1)] * len(users),
            "campaign_id": [campaign_id] * len(users),
            "user_id": users,
            "arm": ["treatment"] * len(treatment) + ["holdout"] * len(holdout),
        }
    )


TREATED = [f"t{n:03d}" for n in range(100)]
HELD = [f"h{n:03d}" for n in range(50)]


def experiment_activity() -> pa.Table:
    yesterday = DS - timedelta(days=1)
    rows = (
        [(u, DS, 1, 0, 1) for u in TREATED[:30]]  # 30 treatment depositors today
        + [(u, DS, 0, 0, 1) for u in TREATED[:10]]  # a second landing partition of the same day
        + [(u, yesterday, 1, 0, 1) for u in TREATED[30:40]]  # deposited yesterday only: not today's success
        + [(u, DS, 0, 1, 1) for u in TREATED[50:55]]  # 5 treatment unsubscribes
        + [(u, DS, 1, 0, 1) for u in HELD[:10]]  # 10 holdout depositors
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
    con.register(
        "activity",
        daily([("a", DS, 1, 0, 0), ("a", DS - timedelta(days=1), 1, 0, 0), ("c", DS - timedelta(days=2), 3, 0, 0)]),
    )
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
    assert list(rows) == [
        ("grow_deposits", "deposit_rate"),
        ("grow_deposits", "unsubscribe_rate"),
        ("skewed_deposits", "deposit_rate"),
    ]

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
        "below_target": ("goal", 0.15, 10000, 2100, 10000, 2000, 0.5),  # ci_high 0.109 < 0.15
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
        "met": "met",
        "below_target": "not_met",
        "unclear": "inconclusive",
        "srm": "srm_fail",
        "empty_arm": "no_data",
        "worse": "breached",
        "same": "ok",
        "worse_from_zero": "breached",
    }
    assert result["below_target"]["ci_high"] == pytest.approx(log_ratio_ci(2100, 10000, 2000, 10000)[1])
    assert result["same"]["p_value"] == pytest.approx(1.0)
    # zero holdout successes: lift undefined, interval by adding 0.5 to every cell (s + 0.5, n + 1)
    assert result["worse_from_zero"]["lift"] is None
    assert result["worse_from_zero"]["ci_low"] == pytest.approx(log_ratio_ci(50.5, 1001, 0.5, 1001)[0])


def outcome_rows(ds, goal_id, metric, campaign_id, arm, users: dict[str, tuple[int, int]]) -> list[dict]:
    """goal_user_outcomes rows: users = {user_id: (days measured, success days)}."""
    return [
        {
            "ds": ds,
            "goal_id": goal_id,
            "metric": metric,
            "campaign_id": campaign_id,
            "arm": arm,
            "user_id": u,
            "first_ds": ds - timedelta(days=n - 1),
            "last_ds": ds,
            "days": n,
            "successes": x,
        }
        for u, (n, x) in users.items()
    ]


def cluster_log_variance(users: list[tuple[int, int]]) -> float:
    """Var(R) / R^2 of the ratio estimator R = sum x / sum n, users as clusters, in plain Python."""
    big_n, days, successes = len(users), sum(n for n, _ in users), sum(x for _, x in users)
    rate = successes / days
    var_rate = big_n / (big_n - 1) * sum((x - rate * n) ** 2 for n, x in users) / days**2
    return var_rate / rate**2


TREATED_USERS = {"t1": (5, 4), "t2": (5, 0), "t3": (3, 3), "t4": (2, 1)}  # 15 user-days, 8 successes
HELD_USERS = {"h1": (5, 1), "h2": (4, 2), "h3": (1, 0)}  # 10 user-days, 3 successes


def test_goal_to_date_treats_users_as_clusters():
    rows = (
        outcome_rows(DS, "grow_deposits", "deposit_rate", "even", "treatment", TREATED_USERS)
        + outcome_rows(DS, "grow_deposits", "deposit_rate", "even", "holdout", HELD_USERS)
        + outcome_rows(DS, "grow_deposits", "deposit_rate", "old_campaign", "holdout", {"h9": (9, 9)})
    )
    result = goal_to_date(pa.Table.from_pylist(rows, schema=GOAL_USER_OUTCOMES_SCHEMA), DS, GOALS[:1], CAMPAIGNS)

    assert result.schema == GOAL_METRICS_SCHEMA
    goal, guardrail = result.to_pylist()
    assert (goal["metric"], goal["window"], goal["ds"]) == ("deposit_rate", "to_date", DS)
    assert (goal["treatment_users"], goal["holdout_users"]) == (4, 3)  # distinct users
    assert (goal["treatment_user_days"], goal["holdout_user_days"]) == (15, 10)
    assert (goal["treatment_successes"], goal["holdout_successes"]) == (8, 3)  # success days
    assert (goal["treatment_value"], goal["holdout_value"]) == (pytest.approx(8 / 15), pytest.approx(0.3))
    assert goal["lift"] == pytest.approx((8 / 15) / 0.3 - 1)

    # by hand: R_t = 8/15, sum (x - R n)^2 = 1.7778 + 7.1111 + 1.96 + 0.0044 = 10.8533,
    # Var(R_t) = 4/3 * 10.8533 / 15^2 = 0.064316, / R_t^2 = 0.22611; R_h = 0.3: 0.25 + 0.64 + 0.09 = 0.98,
    # Var(R_h) = 3/2 * 0.98 / 10^2 = 0.0147, / R_h^2 = 0.16333; se = sqrt(0.38944) = 0.62406
    se = math.sqrt(cluster_log_variance(list(TREATED_USERS.values())) + cluster_log_variance(list(HELD_USERS.values())))
    assert se == pytest.approx(0.62406, abs=1e-5)
    centre = math.log((8 / 15) / 0.3)
    assert goal["ci_low_fixed"] == pytest.approx(math.exp(centre - Z * se) - 1)
    assert goal["ci_high_fixed"] == pytest.approx(math.exp(centre + Z * se) - 1)
    assert (goal["ci_low_fixed"], goal["ci_high_fixed"]) == (
        pytest.approx(-0.47680, abs=1e-4),
        pytest.approx(5.0403, abs=1e-3),
    )
    assert goal["p_value_fixed"] == pytest.approx(math.erfc(abs(centre) / se / math.sqrt(2)))
    # sample ratio on distinct users, 4 : 3 against 2/3 : 1/3: chi2 = (2/3)^2 / (14/3) + (2/3)^2 / (7/3)
    assert goal["srm_p_value"] == pytest.approx(math.erfc(math.sqrt((4 / 9 / (14 / 3) + 4 / 9 / (7 / 3)) / 2)))
    assert goal["status"] == "inconclusive"
    assert (guardrail["metric"], guardrail["treatment_users"], guardrail["status"]) == (
        "unsubscribe_rate",
        0,
        "no_data",
    )


def test_goal_to_date_zero_successes_and_single_users():
    zero = (
        outcome_rows(DS, "grow_deposits", "deposit_rate", "even", "treatment", TREATED_USERS)
        + outcome_rows(DS, "grow_deposits", "deposit_rate", "even", "holdout", {"h1": (5, 0), "h2": (4, 0)})
        + outcome_rows(DS, "grow_deposits", "unsubscribe_rate", "even", "treatment", {"t1": (5, 1)})
        + outcome_rows(DS, "grow_deposits", "unsubscribe_rate", "even", "holdout", HELD_USERS)
    )
    goal, guardrail = goal_to_date(
        pa.Table.from_pylist(zero, schema=GOAL_USER_OUTCOMES_SCHEMA), DS, GOALS[:1], CAMPAIGNS
    ).to_pylist()
    # no holdout success: rates corrected on the totals, that arm's term 1/0.5 - 1/(sum n + 1)
    assert goal["lift"] is None
    se = math.sqrt(cluster_log_variance(list(TREATED_USERS.values())) + 1 / 0.5 - 1 / 10)
    centre = math.log(8.5 / 16) - math.log(0.5 / 10)
    assert goal["ci_low_fixed"] == pytest.approx(math.exp(centre - Z * se) - 1)
    # a single treatment user: no variance estimate, no interval
    assert (guardrail["treatment_users"], guardrail["ci_low"], guardrail["p_value"]) == (1, None, None)
    assert guardrail["status"] == "inconclusive"  # nothing shows the rise within its margin


def day_outcomes(goal_id, metric, campaign_id, users: dict[str, tuple[str, bool]]) -> pa.Table:
    """One day's per-user outcomes: users = {user_id: (arm, success)}."""
    return pa.Table.from_pylist(
        [
            {"goal_id": goal_id, "metric": metric, "campaign_id": campaign_id, "arm": arm, "user_id": u, "success": s}
            for u, (arm, s) in users.items()
        ],
        schema=GOAL_USER_DAY_SCHEMA,
    )


def test_user_outcomes_incremental_equals_from_scratch():
    rng = np.random.default_rng(3)
    start = DS - timedelta(days=5)
    days = [start + timedelta(days=n) for n in range(6)]
    users = [f"u{n:02d}" for n in range(40)]
    arm = {u: "holdout" if rng.random() < 0.3 else "treatment" for u in users}
    daily_outcomes = {}
    for day in days:  # an audience that changes from day to day, two goals
        parts = []
        for goal_id, campaign in (("grow_deposits", "even"), ("skewed_deposits", "skewed")):
            present = [u for u in users if rng.random() < 0.7]
            parts.append(
                day_outcomes(
                    goal_id, "deposit_rate", campaign, {u: (arm[u], bool(rng.random() < 0.4)) for u in present}
                )
            )
        daily_outcomes[day] = pa.concat_tables(parts)
    daily_outcomes[days[2]] = GOAL_USER_DAY_SCHEMA.empty_table()  # a day without audience

    table = None  # the first day builds from nothing
    for day in days:
        previous, table = table, update_goal_user_outcomes(table, daily_outcomes[day], day)
        assert table.schema == GOAL_USER_OUTCOMES_SCHEMA
        assert update_goal_user_outcomes(previous, daily_outcomes[day], day).equals(table)  # a re-run: identical

    scratch = {}
    for day in days:
        for r in daily_outcomes[day].to_pylist():
            key = (r["goal_id"], r["metric"], r["campaign_id"], r["arm"], r["user_id"])
            first, _, n, x = scratch.get(key, (day, day, 0, 0))
            scratch[key] = (first, day, n + 1, x + int(r["success"]))
    expected = [
        {
            "ds": days[-1],
            "goal_id": k[0],
            "metric": k[1],
            "campaign_id": k[2],
            "arm": k[3],
            "user_id": k[4],
            "first_ds": v[0],
            "last_ds": v[1],
            "days": v[2],
            "successes": v[3],
        }
        for k, v in sorted(scratch.items())
    ]
    assert table.to_pylist() == expected

    # the to_date user-days and successes are the sums of the day rows
    to_date = goal_to_date(table, days[-1], GOALS, CAMPAIGNS).to_pylist()
    day_rows = [r for day in days for r in goal_day_rows(daily_outcomes[day], GOALS, CAMPAIGNS, day).to_pylist()]
    for row in to_date:
        same = [r for r in day_rows if (r["goal_id"], r["metric"]) == (row["goal_id"], row["metric"])]
        for arm_name in ("treatment", "holdout"):
            assert row[f"{arm_name}_user_days"] == sum(r[f"{arm_name}_users"] for r in same)
            assert row[f"{arm_name}_successes"] == sum(r[f"{arm_name}_successes"] for r in same)


def test_day_outcomes_count_into_day_rows():
    audiences = pa.concat_tables([audience("even", TREATED, HELD), audience("skewed", TREATED, HELD)])
    outcomes = goal_user_day_outcomes(audiences, experiment_activity(), GOALS, METRICS, DS)
    assert outcomes.schema == GOAL_USER_DAY_SCHEMA
    assert outcomes.num_rows == 3 * 150  # every audience user, per goal and measured metric
    # counted by hand from experiment_activity(): 30 / 10 depositors today, 5 / 1 unsubscribes
    counts = {}
    for r in outcomes.to_pylist():
        key = (r["goal_id"], r["metric"], r["arm"])
        users, successes = counts.get(key, (0, 0))
        counts[key] = (users + 1, successes + int(r["success"]))
    assert counts == {
        ("grow_deposits", "deposit_rate", "treatment"): (100, 30),
        ("grow_deposits", "deposit_rate", "holdout"): (50, 10),
        ("grow_deposits", "unsubscribe_rate", "treatment"): (100, 5),
        ("grow_deposits", "unsubscribe_rate", "holdout"): (50, 1),
        ("skewed_deposits", "deposit_rate", "treatment"): (100, 30),
        ("skewed_deposits", "deposit_rate", "holdout"): (50, 10),
    }
    assert "outsider" not in set(outcomes.column("user_id").to_pylist())
    # goal_day_metrics is goal_day_rows over goal_user_day_outcomes, so the equality below only checks
    # that wiring; the day rows' own counts are checked against the hand counts here
    rows = {(r["goal_id"], r["metric"]): r for r in goal_day_rows(outcomes, GOALS, CAMPAIGNS, DS).to_pylist()}
    for (goal_id, metric, arm), (users, successes) in counts.items():
        assert (rows[(goal_id, metric)][f"{arm}_users"], rows[(goal_id, metric)][f"{arm}_successes"]) == (
            users,
            successes,
        )
    assert goal_day_rows(outcomes, GOALS, CAMPAIGNS, DS).equals(
        goal_day_metrics(audiences, experiment_activity(), GOALS, METRICS, CAMPAIGNS, DS)
    )


def simulated_no_effect(datasets: int, seed: int) -> tuple[pa.Table, list[Goal], list[Campaign]]:
    """`datasets` independent campaigns without effect: heterogeneous users (day rates from a skewed
    Beta), measured on many days each, a 20% holdout."""
    rng = np.random.default_rng(seed)
    users_per, frames, goals, campaigns = 400, [], [], []
    for k in range(datasets):
        rate = rng.beta(0.3, 2.0, users_per)  # some users succeed most days, most rarely
        days = rng.integers(5, 31, users_per)  # days measured
        successes = rng.binomial(days, rate)
        arm = np.where(rng.random(users_per) < 0.2, "holdout", "treatment")
        frames.append(
            pl.DataFrame(
                {
                    "goal_id": f"g{k:03d}",
                    "metric": "deposit_rate",
                    "campaign_id": f"c{k:03d}",
                    "arm": arm,
                    "user_id": [f"u{n}" for n in range(users_per)],
                    "days": days.astype(np.int64),
                    "successes": successes.astype(np.int64),
                }
            )
        )
        goals.append(Goal(f"g{k:03d}", "engagement", "deposit_rate", f"c{k:03d}", 0.1, ()))
        campaigns.append(Campaign(f"c{k:03d}", "", ("s",), ("t",), 10, 0.2, FrequencyCap(1, 1)))
    table = pl.concat(frames).with_columns(ds=pl.lit(DS), first_ds=pl.lit(DS), last_ds=pl.lit(DS))
    return table.select(GOAL_USER_OUTCOMES_SCHEMA.names).to_arrow().cast(GOAL_USER_OUTCOMES_SCHEMA), goals, campaigns


def test_cluster_interval_covers_no_effect_with_heterogeneous_users():
    table, goals, campaigns = simulated_no_effect(200, seed=11)
    rows = goal_to_date(table, DS, goals, campaigns).to_pylist()
    covered = sum(r["ci_low"] <= 0 <= r["ci_high"] for r in rows)
    assert covered >= 0.9 * len(rows)
    assert sum(r["status"] == "met" for r in rows) <= 0.05 * len(rows)

    # the user-days-as-trials interval on the same data is far too narrow (the bug this replaces)
    naive = with_statistics(
        pl.DataFrame(
            [
                {
                    "kind": "guardrail",
                    "target": None,
                    "holdout_share": 0.2,
                    "treatment_users": r["treatment_user_days"],
                    "holdout_users": r["holdout_user_days"],
                    "treatment_successes": r["treatment_successes"],
                    "holdout_successes": r["holdout_successes"],
                }
                for r in rows
            ]
        )
    ).to_dicts()
    assert sum(r["ci_low"] <= 0 <= r["ci_high"] for r in naive) < 0.8 * len(naive)


def test_missing_previous_user_outcomes_is_a_clear_error(tmp_path):
    lake = Lake(tmp_path)
    start = DS - timedelta(days=3)
    assert previous_stored(lake, USER_OUTCOMES, start, start) is None  # the first day builds from nothing
    with pytest.raises(MissingPartition, match=r"goals/goal_user_outcomes for 2026-10-10 .* 2026-10-09"):
        previous_stored(lake, USER_OUTCOMES, DS, start)
    write_parquet_atomic(
        GOAL_USER_OUTCOMES_SCHEMA.empty_table(),
        lake.partition_file("goals", "goal_user_outcomes", DS - timedelta(days=1)),
    )
    assert previous_stored(lake, USER_OUTCOMES, DS, start).num_rows == 0


def test_north_star_value_and_contributions():
    users = pa.table({"user_id": ["u1", "u2", "u3", "u4", "u5", "u6"]})
    activity = daily(
        [
            ("u1", DS, 0, 0, 1),
            ("u2", DS - timedelta(days=1), 0, 0, 0),
            ("u2", DS - timedelta(days=6), 0, 0, 1),  # first day of the 7-day window
            ("u3", DS - timedelta(days=7), 0, 0, 2),  # just outside it
            ("u4", DS - timedelta(days=2), 0, 0, 0),
            ("u4", DS - timedelta(days=2), 0, 0, 0),
            ("u7", DS, 0, 0, 1),  # not a known user
        ]
    )
    metric = METRICS["weekly_active_share"]

    series = north_star(activity, users, metric, "engagement", DS)
    assert series.schema == NORTH_STAR_SCHEMA
    assert series.to_pylist() == [
        {
            "ds": DS,
            "north_star_id": "engagement",
            "metric": "weekly_active_share",
            "value": pytest.approx(2 / 6),
            "active_users": 2,
            "total_users": 6,
        }
    ]

    audiences = audience("even", ["u1", "u3", "u4"], ["u2", "u5"])
    contributions = north_star_contributions(audiences, activity, metric, GOALS, 6, DS)
    assert contributions.schema == CONTRIBUTIONS_SCHEMA
    even, skewed = contributions.to_pylist()
    assert (even["goal_id"], even["campaign_id"], even["treatment_users"]) == ("grow_deposits", "even", 3)
    assert (even["treatment_value"], even["holdout_value"]) == (pytest.approx(1 / 3), 0.5)
    assert even["contribution"] == pytest.approx((1 / 3 - 1 / 2) * 3 / 6)
    assert (skewed["treatment_users"], skewed["treatment_value"], skewed["contribution"]) == (0, None, None)


def cluster_counts(rows: list[tuple]) -> pl.DataFrame:
    """To-date count rows of one-day users: (goal_id, kind, target, margin, n_t, s_t, n_h, s_h); with n_i = 1 for
    every user, sum (x_i - R n_i)^2 = s (1 - R)^2 + (N - s) R^2."""

    def arm(n, s):
        rate = s / n
        return {"users": n, "user_days": n, "successes": s, "sq_residuals": s * (1 - rate) ** 2 + (n - s) * rate**2}

    return pl.DataFrame(
        [
            {
                "goal_id": g,
                "kind": k,
                "target": t,
                "margin": m,
                "campaign_id": "c",
                "holdout_share": 0.5,
                **{f"treatment_{c}": v for c, v in arm(nt, st).items()},
                **{f"holdout_{c}": v for c, v in arm(nh, sh).items()},
            }
            for g, k, t, m, nt, st, nh, sh in rows
        ],
        schema_overrides={"target": pl.Float64, "margin": pl.Float64},
    )


def test_to_date_interval_is_sequential_and_the_fixed_one_is_kept():
    rows = outcome_rows(DS, "grow_deposits", "deposit_rate", "even", "treatment", TREATED_USERS) + outcome_rows(
        DS, "grow_deposits", "deposit_rate", "even", "holdout", HELD_USERS
    )
    table = pa.Table.from_pylist(rows, schema=GOAL_USER_OUTCOMES_SCHEMA)
    goal, _ = goal_to_date(table, DS, GOALS[:1], CAMPAIGNS).to_pylist()
    # 7 users: n rho^2 = 7 * 0.00158723 = 0.0111106; multiplier sqrt(2 * 1.0111106 / 0.0111106 * log(1.0055399 / 0.05))
    #   = 23.37205; the only test of campaign `even` (the guardrail has no data): alpha 0.05
    centre, se = math.log((8 / 15) / 0.3), 0.624055
    assert goal["alpha"] == 0.05
    assert goal["ci_high"] == pytest.approx(math.exp(centre + 23.37205 * se) - 1, rel=1e-4)
    assert goal["ci_low"] < goal["ci_low_fixed"] < goal["ci_high_fixed"] < goal["ci_high"]
    assert goal["p_value"] == 1.0  # sqrt(1.0111106) exp(-0.0111106 * 0.85003 / 2.0222) = 1.00085, capped at 1


def test_guardrail_margins_and_gating():
    frame = cluster_counts(
        [
            # goal clearly met: 3000 vs 2000 of 10000 (lift 0.5)
            ("g", "goal", 0.1, None, 10000, 3000, 10000, 2000),
            # rise of 100% on 10000 users each: shown above a 10% margin
            ("g", "guardrail", None, 0.1, 10000, 1000, 10000, 500),
            ("ok", "guardrail", None, 0.1, 100000, 5000, 100000, 5000),  # no rise, shown below 10% on 200000 users
            ("few", "guardrail", None, 0.1, 200, 10, 200, 10),  # no rise, too few users to tell
            ("wide", "guardrail", None, 3.0, 10000, 1000, 10000, 500),  # rise 100%, within a 300% margin
        ]
    )
    result = gate_by_guardrails(with_cluster_statistics(frame)).to_dicts()
    assert [r["status"] for r in result] == ["blocked_by_guardrail", "breached", "ok", "inconclusive", "ok"]
    assert all(r["ci_low"] < r["ci_low_fixed"] and r["ci_high_fixed"] < r["ci_high"] for r in result)
    # Holm over the campaign's five tests: the smallest p-value is read at 0.05 / 5, the next at 0.05 / 4, ...
    assert sorted(r["alpha"] for r in result)[:2] == [pytest.approx(0.01), pytest.approx(0.0125)]
    ungated = with_cluster_statistics(frame).to_dicts()
    assert ungated[0]["status"] == "met"


def test_a_goal_is_running_before_its_planned_horizon():
    rows = outcome_rows(DS, "grow_deposits", "deposit_rate", "even", "treatment", TREATED_USERS) + outcome_rows(
        DS, "grow_deposits", "deposit_rate", "even", "holdout", HELD_USERS
    )
    table = pa.Table.from_pylist(rows, schema=GOAL_USER_OUTCOMES_SCHEMA)
    even = CAMPAIGNS[0]
    for horizon, expected in [
        ({"end": DS + timedelta(days=1)}, "running"),
        ({"end": DS}, "inconclusive"),
        ({"start": DS + timedelta(days=1)}, "running"),
        ({"planned_users": 8}, "running"),
        ({"planned_users": 7}, "inconclusive"),
    ]:
        campaigns = [replace(even, **horizon), CAMPAIGNS[1]]
        goal, guardrail = goal_to_date(table, DS, GOALS[:1], campaigns).to_pylist()
        assert (goal["status"], guardrail["status"]) == (expected, "no_data"), horizon


# --- intent to treat, late data, CUPED --------------------------------------------------------------------

ITT_GOAL = Goal("grow_deposits", "engagement", "deposit_rate", "even", 0.0, ())
ITT_CAMPAIGN = Campaign("even", "", ("s",), ("t",), 10, 0.5, FrequencyCap(1, 1))


def audience_on(day: date, arms: dict[str, str]) -> pa.Table:
    """The campaign `even`'s audience as of `day`: {user: arm}."""
    return pa.table(
        {
            "as_of": pa.array([day] * len(arms), pa.date32()),
            "campaign_id": ["even"] * len(arms),
            "user_id": list(arms),
            "arm": list(arms.values()),
        }
    )


def run_days(audiences, rows, start, last, lookback=0, goal=ITT_GOAL):
    """Run the goal layer's ITT steps day by day (as the Dagster asset does); rows = (user, activity day, landing
    day, deposits). Returns {day: (cohort, settled outcomes, to_date goal row)}."""
    cohort = settled = None
    results = {}
    day = start
    while day <= last:
        known = [(u, d, 1 if dep else 0, 0, 1) for u, d, landed, dep in rows if landed <= day]
        activity = daily(known) if known else daily([("nobody", day, 0, 0, 0)])
        previous_day = day - timedelta(days=1)
        audience_prev = audience_on(previous_day, audiences[previous_day]) if previous_day in audiences else None
        cohort = update_goal_cohort(cohort, audience_prev, None, activity, [goal], METRICS, day, start)
        settled, read = measure_cohort(settled, cohort, activity, [goal], METRICS, day, start, lookback)
        [row] = goal_to_date(read, day, [goal], [ITT_CAMPAIGN], cohort).to_pylist()
        results[day] = (cohort, settled, row)
        day += timedelta(days=1)
    return results


def test_intent_to_treat_stays_unbiased_when_the_treatment_makes_users_leave():
    """Treated users leave the audience the day after their first deposit (the campaign 'graduates' them);
    users differ (rates from Beta(2, 8)); the planted lift is +30%. Measured only on their days in the audience,
    the treated arm keeps its low-rate users and loses the high-rate ones: the estimate is biased down."""
    rng = np.random.default_rng(7)
    users, start, days = 1500, DS - timedelta(days=12), 12
    ids = [f"u{n:04d}" for n in range(users)]
    arm = dict(zip(ids, np.where(rng.random(users) < 0.5, "holdout", "treatment").tolist(), strict=True))
    rate = dict(zip(ids, rng.beta(2, 8, users), strict=True))
    in_audience = {u: True for u in ids}
    audiences, rows = {start - timedelta(days=1): dict(arm)}, []
    for k in range(days):
        day = start + timedelta(days=k)
        for u in ids:
            if rng.random() < rate[u] * (1.3 if arm[u] == "treatment" else 1.0):
                rows.append((u, day, day, True))
                if arm[u] == "treatment":
                    in_audience[u] = False
        audiences[day] = {u: arm[u] for u in ids if in_audience[u]}
    last = start + timedelta(days=days - 1)
    itt = run_days(audiences, rows, start, last)[last][2]

    # the old per-day-in-audience estimate, on the same data: measured on day d only when in the audience of d - 1
    table = None
    for k in range(days):
        day = start + timedelta(days=k)
        activity = daily([(u, d, 1, 0, 1) for u, d, landed, _ in rows if landed <= day])
        outcomes = goal_user_day_outcomes(
            audience_on(day, audiences[day - timedelta(days=1)]), activity, [ITT_GOAL], METRICS, day
        )
        table = update_goal_user_outcomes(table, outcomes, day)
    [old] = goal_to_date(table, last, [ITT_GOAL], [ITT_CAMPAIGN]).to_pylist()

    assert itt["ci_low_fixed"] < 0.3 < itt["ci_high_fixed"] and abs(itt["lift_unadjusted"] - 0.3) < 0.06
    assert old["ci_high_fixed"] < 0.3 and old["lift"] < 0.1  # biased far below the planted +30%
    assert (itt["treatment_users"], itt["holdout_users"]) == (
        sum(a == "treatment" for a in arm.values()),
        sum(a == "holdout" for a in arm.values()),
    )
    assert itt["treatment_user_days"] == days * itt["treatment_users"]  # every day from entry, audience or not

    # against the independent computation (no covariate here: pre-entry history is empty, CUPED does not apply)
    expected = independent.itt_user_outcomes(audiences, [(u, d, landed) for u, d, landed, _ in rows], last)
    for arm_name, per_user in expected.items():
        assert itt[f"{arm_name}_user_days"] == sum(n for n, _ in per_user.values())
        assert itt[f"{arm_name}_successes"] == sum(x for _, x in per_user.values())
    lift, low, high = independent.cluster_relative_lift(
        list(expected["treatment"].values()), list(expected["holdout"].values())
    )
    assert (itt["lift"], itt["ci_low_fixed"], itt["ci_high_fixed"], itt["cuped_theta"]) == (
        pytest.approx(lift),
        pytest.approx(low),
        pytest.approx(high),
        0.0,
    )


def test_late_activity_counts_towards_its_day_within_the_lookback():
    start = DS - timedelta(days=6)
    arms = {f"t{n}": "treatment" for n in range(6)} | {f"h{n}": "holdout" for n in range(6)}
    audiences = {start - timedelta(days=1): arms, start: {"t0": "treatment", "h0": "holdout"}}
    late_day = start + timedelta(days=2)
    rows = [  # on-time deposits on a fixed pattern
        (u, start + timedelta(days=k), start + timedelta(days=k), True)
        for k in range(7)
        for u in arms
        if (int(u[1:]) + k) % 3 == 0
    ]
    late = [
        ("t5", late_day, late_day + timedelta(days=2), True),  # lands two days late: within the lookback
        ("h5", late_day, late_day + timedelta(days=5), True),  # lands five days late: beyond it, never counted
    ]
    results = run_days(audiences, rows + late, start, start + timedelta(days=6), lookback=3)
    success_rows = [(u, d, landed) for u, d, landed, _ in rows + late]
    for day, (_cohort, settled, row) in results.items():
        expected = independent.itt_user_outcomes(audiences, success_rows, day, lookback=3)
        for arm_name, per_user in expected.items():
            assert row[f"{arm_name}_user_days"] == sum(n for n, _ in per_user.values()), day
            assert row[f"{arm_name}_successes"] == sum(x for _, x in per_user.values()), day
        # the stored outcomes hold the settled days only: up to day - 3
        assert all(r["last_ds"] <= day - timedelta(days=3) for r in settled.to_pylist()), day

    # the run two days after late_day counts t5's deposit on late_day, the run before did not yet know it
    on_time = [(u, d, landed) for u, d, landed, _ in rows]
    for day, with_late in ((late_day + timedelta(days=1), 0), (late_day + timedelta(days=2), 1)):
        without = independent.itt_user_outcomes(audiences, on_time, day, lookback=3)["treatment"]
        assert results[day][2]["treatment_successes"] == sum(x for _, x in without.values()) + with_late
    # and keeps counting it once the day is settled (the stored outcomes carry it)
    last = start + timedelta(days=6)
    assert results[last][2]["treatment_successes"] == 1 + sum(
        x for _, x in independent.itt_user_outcomes(audiences, on_time, last)["treatment"].values()
    )
    stored = {r["user_id"]: r for r in results[last][1].to_pylist()}
    assert stored["t5"]["successes"] == sum(1 for u, d, _, _ in rows if u == "t5" and d <= last - timedelta(days=3)) + 1


def test_exposure_is_a_secondary_view():
    start = DS - timedelta(days=1)
    arms = {"t1": "treatment", "t2": "treatment", "t3": "treatment", "h1": "holdout", "h2": "holdout"}
    activity = daily([("t1", DS, 1, 0, 1), ("t2", DS, 1, 0, 1), ("h1", DS, 1, 0, 1)])
    exported = pa.table({"campaign_id": ["even"], "user_id": ["t1"]})
    cohort = update_goal_cohort(None, audience_on(start, arms), None, activity, [ITT_GOAL], METRICS, start, start)
    cohort = update_goal_cohort(cohort, audience_on(DS, arms), exported, activity, [ITT_GOAL], METRICS, DS, start)
    assert cohort.schema == GOAL_COHORT_SCHEMA
    assert {r["user_id"]: r["exposed_ds"] for r in cohort.to_pylist()} == {
        "h1": None,
        "h2": None,
        "t1": DS,
        "t2": None,
        "t3": None,
    }
    settled, read = measure_cohort(None, cohort, activity, [ITT_GOAL], METRICS, DS, start, 0)
    [row] = goal_to_date(read, DS, [ITT_GOAL], [ITT_CAMPAIGN], cohort).to_pylist()
    assert (row["treatment_users"], row["treatment_successes"]) == (3, 2)  # the primary: every treated user
    assert (row["treatment_exposed_users"], row["exposed_value"]) == (1, 1.0)  # the exposed one deposited
    assert row["exposed_lift"] == pytest.approx(1.0 / 0.5 - 1)  # against the holdout's 1 of 2 (as treated)


def test_cuped_to_date_against_the_independent_computation():
    """Users whose pre-entry rate predicts their outcome: the CUPED estimate is the primary one, it matches
    tests/independent.py, and its interval is narrower than the unadjusted one beside it."""
    rng = np.random.default_rng(5)
    rows, cohort = [], []
    for n_user in range(600):
        arm = "holdout" if n_user % 3 == 0 else "treatment"
        rate = rng.beta(2, 8)
        days = int(rng.integers(3, 15))
        successes = int(rng.binomial(days, min(1.0, rate * (1.2 if arm == "treatment" else 1.0))))
        pre = int(rng.binomial(14, rate))
        user = f"u{n_user:03d}"
        rows += outcome_rows(DS, "grow_deposits", "deposit_rate", "even", arm, {user: (days, successes)})
        cohort.append(
            {"ds": DS, "goal_id": "grow_deposits", "metric": "deposit_rate", "campaign_id": "even", "arm": arm,
             "user_id": user, "entry_ds": DS, "pre_days": 14, "pre_successes": pre, "exposed_ds": None}
        )  # fmt: skip
    outcomes = pa.Table.from_pylist(rows, schema=GOAL_USER_OUTCOMES_SCHEMA)
    cohort_table = pa.Table.from_pylist(cohort, schema=GOAL_COHORT_SCHEMA)
    goal, _ = goal_to_date(outcomes, DS, GOALS[:1], CAMPAIGNS, cohort_table).to_pylist()
    per_arm = {"treatment": [], "holdout": []}
    for r, c in zip(rows, cohort, strict=True):
        per_arm[r["arm"]].append((r["days"], r["successes"], c["pre_successes"] / 14))
    lift, low, high = independent.cuped_relative_lift(per_arm["treatment"], per_arm["holdout"])
    assert (goal["lift"], goal["ci_low_fixed"], goal["ci_high_fixed"]) == (
        pytest.approx(lift),
        pytest.approx(low),
        pytest.approx(high),
    )
    assert goal["cuped_theta"] > 0
    unadjusted = math.log1p(goal["ci_high_unadjusted"]) - math.log1p(goal["ci_low_unadjusted"])
    assert math.log1p(goal["ci_high"]) - math.log1p(goal["ci_low"]) < 0.95 * unadjusted
    plain = independent.cluster_relative_lift(
        [(n, x) for n, x, _ in per_arm["treatment"]], [(n, x) for n, x, _ in per_arm["holdout"]]
    )
    assert goal["lift_unadjusted"] == pytest.approx(plain[0])
