"""North Star: window coverage over the first week, contributions with an interval, overlapping audiences
counted once. Values are worked by hand in the comments."""

import math
from datetime import date, timedelta

import pyarrow as pa
import pytest

from assets.north_star import (
    CONTRIBUTIONS_SCHEMA,
    NORTH_STAR_TABLE_SCHEMA,
    attributed_audiences,
    north_star,
    north_star_contributions,
    total_contribution,
    with_window_coverage,
)
from assets.pyramid_map import Goal, Metric

DS = date(2026, 10, 10)
Z = 1.959963984540054
WEEKLY = Metric("weekly_active_share", "", 7, "sessions > 0")


def activity(active: list[str]) -> pa.Table:
    return pa.table(
        {
            "user_id": active,
            "activity_date": pa.array([DS] * len(active), pa.date32()),
            "sessions": [1] * len(active),
        }
    )


def audiences(rows: list[tuple[str, str, str, int]]) -> pa.Table:
    """rows: (campaign_id, user_id, arm, priority)."""
    return pa.table(
        {
            "as_of": pa.array([DS - timedelta(days=1)] * len(rows), pa.date32()),
            "campaign_id": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "arm": [r[2] for r in rows],
            "priority": [r[3] for r in rows],
        }
    )


@pytest.mark.parametrize(("day", "history", "complete"), [(0, 1, False), (2, 3, False), (6, 7, True), (30, 31, True)])
def test_the_first_week_of_the_north_star_is_flagged_incomplete(day, history, complete):
    start = DS - timedelta(days=day)
    series = north_star(activity(["u1"]), pa.table({"user_id": ["u1", "u2"]}), WEEKLY, "engagement", DS)
    table = with_window_coverage(series, WEEKLY.window_days, DS, start)
    assert table.schema == NORTH_STAR_TABLE_SCHEMA
    [row] = table.to_pylist()
    assert (row["value"], row["history_days"], row["window_complete"]) == (0.5, history, complete)


def test_contribution_interval_by_hand():
    """Treatment u1 u3 u4 (u1 active: 1/3), holdout u2 u5 (u2 active: 1/2), N = 6.
    p~_t = 2/5, p~_h = 2/4; var = 0.4 * 0.6 / 5 + 0.5 * 0.5 / 4 = 0.1105; scale n_t / N = 1/2."""
    rows = [("c", u, "treatment", 1) for u in ("u1", "u3", "u4")] + [("c", u, "holdout", 1) for u in ("u2", "u5")]
    goals = [Goal("g", "engagement", "m", "c", 0.1, ())]
    [row] = north_star_contributions(audiences(rows), activity(["u1", "u2"]), WEEKLY, goals, 6, DS, DS).to_pylist()
    assert row["contribution"] == pytest.approx((1 / 3 - 1 / 2) * 3 / 6)
    low, high = 0.5 * (-0.1 - Z * math.sqrt(0.1105)), 0.5 * (-0.1 + Z * math.sqrt(0.1105))
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert (round(row["ci_low"], 5), round(row["ci_high"], 5)) == (-0.37576, 0.27576)
    assert (row["treatment_users"], row["holdout_users"], row["history_days"], row["window_complete"]) == (
        3,
        2,
        1,
        False,
    )


def test_overlapping_audiences_are_counted_once():
    """x is in A's treatment and B's holdout; A has the higher priority, so x counts for A only.
    A: treatment a1 a2 x (a1, x active: 2/3), holdout a3 (0/1): (2/3 - 0) * 3/10 = 0.2.
    B: treatment b1 (1/1), holdout b2 (0/1), x left out: (1 - 0) * 1/10 = 0.1."""
    rows = [
        ("A", "a1", "treatment", 20),
        ("A", "a2", "treatment", 20),
        ("A", "x", "treatment", 20),
        ("A", "a3", "holdout", 20),
        ("B", "b1", "treatment", 10),
        ("B", "x", "holdout", 10),
        ("B", "b2", "holdout", 10),
    ]
    goals = [
        Goal("a_goal", "engagement", "m", "A", 0.1, ()),
        Goal("a_second_goal", "engagement", "m", "A", 0.1, ()),
        Goal("b_goal", "engagement", "m", "B", 0.1, ()),
    ]
    table = north_star_contributions(audiences(rows), activity(["a1", "x", "b1"]), WEEKLY, goals, 10, DS)
    assert table.schema == CONTRIBUTIONS_SCHEMA
    a, a2, b = table.to_pylist()
    assert (a["treatment_users"], a["holdout_users"], a["contribution"]) == (3, 1, pytest.approx(0.2))
    assert (b["treatment_users"], b["holdout_users"], b["contribution"]) == (1, 1, pytest.approx(0.1))
    assert {k: v for k, v in a2.items() if k != "goal_id"} == {k: v for k, v in a.items() if k != "goal_id"}
    # A: p~ = 3/5, 1/3, var = 0.048 + 2/27; B: p~ = 2/3, 1/3, var = 2 * 2/27; scales 0.3 and 0.1
    var_a, var_b = 0.6 * 0.4 / 5 + (1 / 3) * (2 / 3) / 3, 2 * (2 / 3) * (1 / 3) / 3
    assert a["ci_low"] == pytest.approx(0.3 * (0.6 - 1 / 3 - Z * math.sqrt(var_a)))
    assert b["ci_high"] == pytest.approx(0.1 * (2 / 3 - 1 / 3 + Z * math.sqrt(var_b)))
    # each campaign once (A's second goal repeats A), variances added: the audiences are disjoint
    total = total_contribution(table)
    centre, half = 0.3 * (0.6 - 1 / 3) + 0.1 / 3, Z * math.sqrt(0.09 * var_a + 0.01 * var_b)
    assert total == {
        "contribution": pytest.approx(0.3),
        "ci_low": pytest.approx(centre - half),
        "ci_high": pytest.approx(centre + half),
        "campaigns": 2,
    }
    assert (round(total["ci_low"], 5), round(total["ci_high"], 5)) == (-0.10552, 0.33218)


def test_attribution_without_priorities_takes_the_smaller_campaign_id():
    table = pa.table({"campaign_id": ["B", "A", "C"], "user_id": ["x", "x", "y"], "arm": ["treatment"] * 3})
    kept = attributed_audiences(table, ["A", "B"]).to_pylist()
    assert kept == [{"campaign_id": "A", "user_id": "x", "arm": "treatment"}]  # C has no goal
    assert attributed_audiences(None, ["A"]) is None


def test_no_interval_and_no_contribution_without_both_arms():
    rows = [("c", "u1", "treatment", 1)]
    goals = [Goal("g", "engagement", "m", "c", 0.1, ())]
    [row] = north_star_contributions(audiences(rows), activity(["u1"]), WEEKLY, goals, 4, DS).to_pylist()
    assert (row["contribution"], row["ci_low"], row["ci_high"]) == (None, None, None)
    assert total_contribution(north_star_contributions(audiences(rows), activity([]), WEEKLY, goals, 4, DS)) is None
