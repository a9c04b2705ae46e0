"""The North Star: one series, the share of known users satisfying its metric, and each goal's
contribution to it.

`value` = share of the known, non-erased users (consented or not) whose activity over the metric's
window ending on ds satisfies the metric (users without activity count as zero; see `assets.metrics`).
While history is shorter than that window (the first days of the lake) the value is computed on the
days there are and flagged `window_complete = false` (`with_window_coverage`).

Contribution of a goal (docs/contracts.md, docs/statistics.md): within its campaign's attributed
audience as of ds - 1, the North Star metric in treatment and in holdout;
`contribution = (p_t - p_h) * n_t / N`, the share points of the North Star the campaign adds by
treating its n_t treatment users out of the N known users. Overlapping audiences: a user in the
audiences of several goal campaigns is attributed to one of them only, the highest `priority` (the
campaign that wins the touchpoints), then the smallest campaign id, whatever the arms, so that each
user counts once and the campaigns' contributions add up; goals of one campaign share its figures.
Interval (Agresti & Caffo 2000): with p~ = (x + 1) / (n + 2) per arm,
`n_t / N * (p~_t - p~_h +- z sqrt(p~_t (1 - p~_t) / (n_t + 2) + p~_h (1 - p~_h) / (n_h + 2)))`,
z = 1.959964 (fixed-horizon 95%, n_t / N taken as fixed). NULL when an arm is empty or N = 0: then the
contribution is not shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import polars as pl
import pyarrow as pa

from assets.buckets import split
from assets.features import history_days, window_complete
from assets.metrics import ACTIVITY, arm_counts, campaign_cohort, register_inputs
from assets.pyramid_map import Goal, Metric
from assets.sql_guard import sandboxed_connection
from assets.statistics import contribution_interval, ratio

NORTH_STAR_SCHEMA = pa.schema(
    [
        ("ds", pa.date32()),
        ("north_star_id", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("active_users", pa.int64()),
        ("total_users", pa.int64()),
    ]
)
COVERAGE_FIELDS = [("history_days", pa.int64()), ("window_complete", pa.bool_())]
NORTH_STAR_TABLE_SCHEMA = pa.schema([*NORTH_STAR_SCHEMA, *COVERAGE_FIELDS])  # as stored in the lake
CONTRIBUTIONS_SCHEMA = pa.schema(
    [
        ("ds", pa.date32()),
        ("goal_id", pa.string()),
        ("campaign_id", pa.string()),
        ("treatment_users", pa.int64()),
        ("holdout_users", pa.int64()),
        ("treatment_value", pa.float64()),
        ("holdout_value", pa.float64()),
        ("contribution", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        *COVERAGE_FIELDS,
    ]
)


def north_star(
    activity: pa.Table, users: pa.Table, metric: Metric, north_star_id: str, ds: date, buckets: int = 1
) -> pa.Table:
    """One row: the share of `users` (user_id of the known, non-erased users) satisfying the metric on ds, counted
    bucket by bucket (`assets.buckets`) and summed."""
    counts = _summed(
        _north_star_counts(activity_b, users_b, metric, ds)
        for activity_b, users_b in zip(split(activity, buckets), split(users, buckets), strict=True)
    )
    total_users, active_users = counts.get("all", (0, 0))
    row = {
        "ds": ds,
        "north_star_id": north_star_id,
        "metric": metric.id,
        "value": active_users / total_users if total_users else None,
        "active_users": active_users,
        "total_users": total_users,
    }
    return pa.Table.from_pylist([row], schema=NORTH_STAR_SCHEMA)


def _north_star_counts(activity: pa.Table, users: pa.Table, metric: Metric, ds: date) -> dict[str, tuple[int, int]]:
    con = sandboxed_connection()
    try:
        register_inputs(con, None, activity)
        con.register("_users", users.select(["user_id"]))
        return arm_counts(
            con, metric, ds, "(SELECT user_id, 'all' AS arm FROM _users)", ACTIVITY, activity.column_names
        )
    finally:
        con.close()


def _summed(parts: Iterable[dict[str, tuple[int, int]]]) -> dict[str, tuple[int, int]]:
    """{arm: (users, successes)} added up over buckets."""
    total: dict[str, tuple[int, int]] = {}
    for part in parts:
        for arm, (users, successes) in part.items():
            before = total.get(arm, (0, 0))
            total[arm] = (before[0] + users, before[1] + successes)
    return total


def with_window_coverage(table: pa.Table, window_days: int, ds: date, history_start: date | None) -> pa.Table:
    """`table` with history_days (ds - history_start + 1) and window_complete (history covers the
    metric's window; TRUE without a history_start) on every row."""
    days = history_days(ds, history_start)
    complete = window_complete(window_days, days)
    table = table.append_column(pa.field(*COVERAGE_FIELDS[0]), pa.array([days] * table.num_rows, pa.int64()))
    return table.append_column(pa.field(*COVERAGE_FIELDS[1]), pa.array([complete] * table.num_rows, pa.bool_()))


def north_star_contributions(
    audiences_prev: pa.Table | None,
    activity: pa.Table,
    metric: Metric,
    goals: Sequence[Goal],
    total_users: int,
    ds: date,
    history_start: date | None = None,
    buckets: int = 1,
) -> pa.Table:
    """One row per goal: its campaign's North Star metric per arm on its attributed users (module
    docstring) and its contribution to the North Star with a 95% interval; arms counted per user bucket, summed."""
    attributed = attributed_audiences(audiences_prev, [g.campaign for g in goals])
    per_bucket = [
        _campaign_counts(audiences_b, activity_b, metric, goals, ds)
        for audiences_b, activity_b in zip(split(attributed, buckets), split(activity, buckets), strict=True)
    ]
    rows = [_arm_row(goal, _summed(counts[goal.id] for counts in per_bucket)) for goal in goals]
    table = _contributions(pl.DataFrame(rows, schema=_ARM_ROW_SCHEMA), total_users, ds)
    return with_window_coverage(table, metric.window_days, ds, history_start).cast(CONTRIBUTIONS_SCHEMA)


def _campaign_counts(
    audiences: pa.Table | None, activity: pa.Table, metric: Metric, goals: Sequence[Goal], ds: date
) -> dict[str, dict[str, tuple[int, int]]]:
    """{goal id: {arm: (users, successes)}} of each goal's campaign in `audiences` (already attributed)."""
    con = sandboxed_connection()
    try:
        register_inputs(con, audiences, activity)
        return {
            goal.id: arm_counts(con, metric, ds, campaign_cohort(goal.campaign), ACTIVITY, activity.column_names)
            for goal in goals
        }
    finally:
        con.close()


def attributed_audiences(audiences: pa.Table | None, campaigns: Sequence[str]) -> pa.Table | None:
    """The rows of `campaigns` keeping, per user, only the campaign of highest `priority` (when the table
    has one), then smallest campaign_id: each user counts towards one campaign, whatever the arms."""
    if audiences is None:
        return None
    frame = pl.from_arrow(audiences).filter(pl.col("campaign_id").is_in(list(dict.fromkeys(campaigns))))
    priority = pl.col("priority") if "priority" in frame.columns else pl.lit(0)
    return (
        frame.with_columns(_priority=priority)
        .sort(["user_id", "_priority", "campaign_id"], descending=[False, True, False])
        .unique("user_id", keep="first", maintain_order=True)
        .select("campaign_id", "user_id", "arm")
        .to_arrow()
    )


def total_contribution(contributions: pa.Table) -> dict | None:
    """The campaigns' contributions added up (each campaign once; attributed audiences are disjoint, so
    the variances add), with its 95% interval; None when no campaign has an interval."""
    rows = {r["campaign_id"]: r for r in contributions.to_pylist() if r["ci_low"] is not None}
    if not rows:
        return None
    centre = sum((r["ci_low"] + r["ci_high"]) / 2 for r in rows.values())
    half = sum(((r["ci_high"] - r["ci_low"]) / 2) ** 2 for r in rows.values()) ** 0.5
    return {
        "contribution": sum(r["contribution"] for r in rows.values()),
        "ci_low": centre - half,
        "ci_high": centre + half,
        "campaigns": len(rows),
    }


_ARM_ROW_SCHEMA = {
    "goal_id": pl.String,
    "campaign_id": pl.String,
    "treatment_users": pl.Int64,
    "treatment_successes": pl.Int64,
    "holdout_users": pl.Int64,
    "holdout_successes": pl.Int64,
}


def _arm_row(goal: Goal, counts: dict[str, tuple[int, int]]) -> dict:
    treatment_users, treatment_successes = counts.get("treatment", (0, 0))
    holdout_users, holdout_successes = counts.get("holdout", (0, 0))
    return {
        "goal_id": goal.id,
        "campaign_id": goal.campaign,
        "treatment_users": treatment_users,
        "treatment_successes": treatment_successes,
        "holdout_users": holdout_users,
        "holdout_successes": holdout_successes,
    }


def _contributions(frame: pl.DataFrame, total_users: int, ds: date) -> pa.Table:
    counts = [pl.col(c) for c in ("treatment_successes", "treatment_users", "holdout_successes", "holdout_users")]
    ci_low, ci_high = contribution_interval(*counts, total_users)
    table = frame.with_columns(
        treatment_value=ratio(pl.col("treatment_successes"), pl.col("treatment_users")),
        holdout_value=ratio(pl.col("holdout_successes"), pl.col("holdout_users")),
        ci_low=ci_low,
        ci_high=ci_high,
    ).with_columns(
        ds=pl.lit(ds, pl.Date),
        contribution=pl.when(pl.lit(total_users) > 0).then(
            (pl.col("treatment_value") - pl.col("holdout_value")) * pl.col("treatment_users") / total_users
        ),
    )
    names = [n for n in CONTRIBUTIONS_SCHEMA.names if n not in ("history_days", "window_complete")]
    return table.select(names).to_arrow()
