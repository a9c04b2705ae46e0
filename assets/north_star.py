"""The North Star: one series, the share of known users satisfying its metric, and each goal's
contribution to it.

`value` = share of the known, non-erased users (consented or not) whose activity over the metric's
window ending on ds satisfies the metric (users without activity count as zero; see `assets.metrics`).

Contribution of a goal (docs/contracts.md): within its campaign's audience as of ds - 1, the North Star
metric in treatment and in holdout; `contribution = (treatment_value - holdout_value) *
treatment_users / total_users`, the share points of the North Star the campaign adds by treating its
treatment users. NULL when an arm is empty or there are no users. Contributions of campaigns with
overlapping audiences are each measured on their own and need not add up.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl
import pyarrow as pa

from assets.metrics import ACTIVITY, arm_counts, campaign_cohort, register_inputs
from assets.pyramid_map import Goal, Metric
from assets.sql_guard import sandboxed_connection
from assets.statistics import ratio

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
CONTRIBUTIONS_SCHEMA = pa.schema(
    [
        ("ds", pa.date32()),
        ("goal_id", pa.string()),
        ("campaign_id", pa.string()),
        ("treatment_users", pa.int64()),
        ("treatment_value", pa.float64()),
        ("holdout_value", pa.float64()),
        ("contribution", pa.float64()),
    ]
)


def north_star(activity: pa.Table, users: pa.Table, metric: Metric, north_star_id: str, ds: date) -> pa.Table:
    """One row: the share of `users` (user_id of the known, non-erased users) satisfying the metric on ds."""
    con = sandboxed_connection()
    try:
        register_inputs(con, None, activity)
        con.register("_users", users.select(["user_id"]))
        counts = arm_counts(
            con, metric, ds, "(SELECT user_id, 'all' AS arm FROM _users)", ACTIVITY, activity.column_names
        )
    finally:
        con.close()
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


def north_star_contributions(
    audiences_prev: pa.Table | None,
    activity: pa.Table,
    metric: Metric,
    goals: Sequence[Goal],
    total_users: int,
    ds: date,
) -> pa.Table:
    """One row per goal: its campaign's North Star metric per arm and its contribution to the North Star."""
    con = sandboxed_connection()
    try:
        register_inputs(con, audiences_prev, activity)
        rows = [
            _arm_row(goal, arm_counts(con, metric, ds, campaign_cohort(goal.campaign), ACTIVITY, activity.column_names))
            for goal in goals
        ]
    finally:
        con.close()
    return _contributions(pl.DataFrame(rows, schema=_ARM_ROW_SCHEMA), total_users, ds)


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
    table = frame.with_columns(
        treatment_value=ratio(pl.col("treatment_successes"), pl.col("treatment_users")),
        holdout_value=ratio(pl.col("holdout_successes"), pl.col("holdout_users")),
    ).with_columns(
        ds=pl.lit(ds, pl.Date),
        contribution=pl.when(pl.lit(total_users) > 0).then(
            (pl.col("treatment_value") - pl.col("holdout_value")) * pl.col("treatment_users") / total_users
        ),
    )
    return table.select(CONTRIBUTIONS_SCHEMA.names).to_arrow().cast(CONTRIBUTIONS_SCHEMA)
