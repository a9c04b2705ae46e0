"""Metrics: the per-user success indicator of a map metric, evaluated in SQL on `user_daily` rows.

A user succeeds on day d when the metric's condition holds on the user's `user_daily` columns summed
over the `window_days` ending on d (activity dates d - window_days + 1 .. d, all landing partitions
summed). A user with no rows in the window is evaluated on zero-filled sums; a condition that evaluates
to NULL counts as not satisfied. Conditions are re-checked with `sql_guard.require_safe`; the SQL is
meant for a `sql_guard.sandboxed_connection`, on which the callers register every relation it names.

Goals, segment baselines and the North Star all measure metrics through this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import duckdb
import pyarrow as pa

from assets.pyramid_map import Metric
from assets.sql_guard import expression_columns, require_safe

KEYS = ("user_id", "activity_date", "touchpoint_id")  # never summed
AUDIENCES = "_audiences"  # the relation `register_inputs` registers for the campaigns' audiences
ACTIVITY = "_activity"  # the relation `register_inputs` registers for the user_daily rows
TOUCHPOINT_ACTIVITY = "_touchpoint_activity"  # the relation of user_touchpoint_daily rows, where a metric needs them


def metric_window(metric: Metric, ds: date) -> tuple[date, date]:
    """First and last activity date of the metric's window ending on `ds`."""
    return ds - timedelta(days=metric.window_days - 1), ds


def metric_indicator_sql(metric: Metric, ds: date, activity_columns: Sequence[str], users: str, activity: str) -> str:
    """SQL giving `user_id, success` for every distinct user of the relation `users`.

    `activity` is a relation of user_daily rows with `activity_columns`; the metric columns among them
    are summed over the window and zero-filled for users without rows, then the condition is applied.
    """
    summed = _summed(metric, activity_columns)
    condition = require_safe(metric.condition, summed, where=f"metric {metric.id!r}")
    return f"""{_zero_filled_sums_sql(metric, ds, summed, users, activity)}
        SELECT user_id, coalesce(({condition}), false) AS success FROM zero_filled"""


def _summed(metric: Metric, activity_columns: Sequence[str]) -> list[str]:
    """The activity columns the metric's expressions read, summed over its window: the map allows only the
    summable measures there (assets/pyramid_map/references.py); a column read that is not one is refused."""
    read = {c for text in metric.expressions() for c in expression_columns(text)}
    return [c for c in activity_columns if c in read and c not in KEYS]


def _zero_filled_sums_sql(metric: Metric, ds: date, summed: Sequence[str], users: str, activity: str) -> str:
    """`WITH ... zero_filled`: the `summed` columns of `activity` over the metric's window ending on `ds`, per
    distinct user of `users`, 0 for a user without rows."""
    first, last = metric_window(metric, ds)
    sums = ", ".join(["user_id", *(f"sum({c}) AS {c}" for c in summed)])
    filled = ", ".join(["u.user_id", *(f"coalesce(s.{c}, 0) AS {c}" for c in summed)])
    return f"""
        WITH window_sums AS (
            SELECT {sums} FROM {activity}
            WHERE activity_date BETWEEN DATE '{first.isoformat()}' AND DATE '{last.isoformat()}'
            GROUP BY user_id
        ), zero_filled AS (
            SELECT {filled} FROM (SELECT DISTINCT user_id FROM {users}) u LEFT JOIN window_sums s USING (user_id)
        )"""


def metric_values_sql(metric: Metric, ds: date, activity_columns: Sequence[str], users: str, activity: str) -> str:
    """SQL giving `user_id, numerator, denominator` (DOUBLE) for every distinct user of `users` on the window ending
    on `ds`: a ratio metric's two expressions, a mean metric's value over 1, a share metric's success over 1.

    The expressions see the window's zero-filled sums as `metric_indicator_sql`; NULL counts as 0. For a
    touchpoint metric, `activity` is the touchpoint's rows of `user_touchpoint_daily` (`touchpoint_activity`).
    """
    summed = _summed(metric, activity_columns)
    where = f"metric {metric.id!r}"
    if metric.kind == "share":
        numerator, denominator = f"coalesce(({require_safe(metric.condition, summed, where)}), false)::DOUBLE", "1.0"
    elif metric.kind == "ratio":
        numerator, denominator = (
            require_safe(metric.numerator, summed, where),
            require_safe(metric.denominator, summed, where),
        )
    elif metric.kind == "mean":
        numerator, denominator = require_safe(metric.value, summed, where), "1.0"
    else:
        raise ValueError(f"metric {metric.id!r}: a {metric.kind} metric has no per-day values")
    return f"""{_zero_filled_sums_sql(metric, ds, summed, users, activity)}
        SELECT user_id, coalesce(({numerator})::DOUBLE, 0) AS numerator,
               coalesce(({denominator})::DOUBLE, 0) AS denominator FROM zero_filled"""


def metric_values_days_sql(
    metric: Metric, days: Sequence[date], activity_columns: Sequence[str], users: str, activity: str
) -> str:
    """`metric_values_sql` of each of `days` (at least one), stacked with a `day` column."""
    return " UNION ALL ".join(
        f"SELECT user_id, DATE '{day.isoformat()}' AS day, numerator, denominator FROM "
        f"({metric_values_sql(metric, day, activity_columns, users=users, activity=activity)})"
        for day in days
    )


def touchpoint_activity(metric: Metric, relation: str) -> str:
    """The relation of `user_touchpoint_daily` rows at the metric's touchpoint."""
    return f"(SELECT * FROM {relation} WHERE touchpoint_id = '{metric.touchpoint.replace(chr(39), chr(39) * 2)}')"


def metric_days_sql(
    metric: Metric, days: Sequence[date], activity_columns: Sequence[str], users: str, activity: str
) -> str:
    """SQL giving `user_id, day, success` for every distinct user of `users` on each of `days` (at least one):
    the metric's indicator of each day (`metric_indicator_sql`), stacked."""
    return " UNION ALL ".join(
        f"SELECT user_id, DATE '{day.isoformat()}' AS day, success FROM "
        f"({metric_indicator_sql(metric, day, activity_columns, users=users, activity=activity)})"
        for day in days
    )


def arm_counts(
    con: duckdb.DuckDBPyConnection,
    metric: Metric,
    ds: date,
    cohort: str,
    activity: str,
    activity_columns: Sequence[str],
) -> dict[str, tuple[int, int]]:
    """{arm: (users, successes)} of the relation `cohort` (user_id, arm) on the metric ending on `ds`."""
    indicator = metric_indicator_sql(metric, ds, activity_columns, users=cohort, activity=activity)
    rows = con.sql(
        f"SELECT arm, count(*), count(*) FILTER (WHERE success) FROM ({cohort_outcomes_sql(cohort, indicator)})"
        " GROUP BY arm"
    ).fetchall()
    return {arm: (int(users), int(successes)) for arm, users, successes in rows}


def cohort_outcomes_sql(cohort: str, indicator: str) -> str:
    """`arm, user_id, success` for each distinct (user, arm) of `cohort`, from the metric `indicator`."""
    return f"""SELECT c.arm, c.user_id, i.success
        FROM (SELECT DISTINCT user_id, arm FROM {cohort}) c JOIN ({indicator}) i USING (user_id)"""


def campaign_cohort(campaign_id: str) -> str:
    """The relation of one campaign's audience in the registered AUDIENCES (`register_inputs`)."""
    return f"(SELECT user_id, arm FROM {AUDIENCES} WHERE campaign_id = '{campaign_id.replace(chr(39), chr(39) * 2)}')"


def register_inputs(con: duckdb.DuckDBPyConnection, audiences: pa.Table | None, activity: pa.Table) -> None:
    """Register AUDIENCES (empty when None) and ACTIVITY on the connection."""
    empty = pa.table(
        {
            "campaign_id": pa.array([], pa.string()),
            "user_id": pa.array([], pa.string()),
            "arm": pa.array([], pa.string()),
        }
    )
    con.register(AUDIENCES, empty if audiences is None else audiences.select(["campaign_id", "user_id", "arm"]))
    con.register(ACTIVITY, activity)
