"""Test segments early: per segment and goal metric, the members' rate against all eligible users'
(`segment_baselines`, docs/segments.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from assets.features import touchpoint_daily_schema
from assets.metrics import metric_indicator_sql, metric_values_sql, touchpoint_activity
from assets.pyramid_map import Metric, SegmentDefinition
from assets.sql_guard import sandboxed_connection
from assets.statistics import two_proportion_p_value_scalar

BASELINE_SCHEMA = pa.schema(
    [
        ("as_of", pa.date32()),
        ("segment_id", pa.string()),
        ("kind", pa.string()),
        ("metric", pa.string()),
        ("segment_users", pa.int64()),
        ("segment_successes", pa.int64()),
        ("segment_rate", pa.float64()),
        ("eligible_users", pa.int64()),
        ("eligible_successes", pa.int64()),
        ("eligible_rate", pa.float64()),
        ("ratio", pa.float64()),
        ("p_value", pa.float64()),
    ]
)


def segment_baselines(
    membership: pa.Table,
    features: pa.Table,
    activity: pa.Table,
    metrics: Sequence[Metric],
    definitions: Sequence[SegmentDefinition],
    as_of: date,
    touchpoints: pa.Table | None = None,
) -> pa.Table:
    """ "Test segments early": per segment and metric, the members' rate against all eligible users'.

    The metric is evaluated as goals do (`assets.metrics.metric_indicator_sql`): on each eligible user's
    `user_daily` columns (`activity`, as known on as_of) summed over the metric's window ending on
    as_of. Members are the segment's membership as of the same day, so a segment defined on the very
    behaviour a metric counts differs from the others by construction. `ratio` = segment_rate /
    eligible_rate (NULL when either is undefined or the eligible rate is 0); `p_value`: two-sided
    two-proportion z-test of the members against the other eligible users (pooled rate; 1.0 when the
    pooled rate is 0 or 1; NULL when either group is empty). One row per segment (members or not) and
    metric, in definition then metric order. A ratio or mean metric's rates are sum numerator / sum denominator
    over the users (`assets.metrics.metric_values_sql`; a touchpoint metric on `touchpoints`, user_touchpoint_daily
    rows); its `*_successes` and `p_value` are NULL.
    """
    eligible = features.filter(pc.equal(features.column("consent_personalization"), True)).select(["user_id"])
    con = sandboxed_connection()
    rows = []
    try:
        con.register("_eligible", eligible)
        con.register("_activity", activity)
        con.register("_touchpoints", touchpoint_daily_schema().empty_table() if touchpoints is None else touchpoints)
        con.register("_members", membership.select(["segment_id", "user_id"]))
        con.register(
            "_segments",
            pa.table(
                {
                    "segment_id": pa.array([d.id for d in definitions], pa.string()),
                    "position": pa.array(range(len(definitions)), pa.int64()),
                }
            ),
        )
        for metric in metrics:
            if metric.kind != "share":
                rows += _valued_baseline_rows(con, metric, activity, as_of)
                continue
            indicator = metric_indicator_sql(
                metric, as_of, activity.column_names, users="_eligible", activity="_activity"
            )
            rows += [
                (position, metric.id, *row)
                for position, *row in con.sql(f"""
                WITH i AS ({indicator}),
                overall AS (SELECT count(*) AS n, count(*) FILTER (WHERE success) AS s FROM i)
                SELECT d.position, d.segment_id, count(i.user_id), count(*) FILTER (WHERE i.success),
                       any_value(o.n), any_value(o.s)
                FROM _segments d CROSS JOIN overall o
                LEFT JOIN (SELECT DISTINCT segment_id, user_id FROM _members) m ON m.segment_id = d.segment_id
                LEFT JOIN i ON i.user_id = m.user_id
                GROUP BY d.segment_id, d.position
            """).fetchall()
            ]
    finally:
        con.close()
    return _baseline_table(rows, definitions, as_of)


def _valued_baseline_rows(con: duckdb.DuckDBPyConnection, metric: Metric, activity: pa.Table, as_of: date) -> list:
    """Per segment: (position, metric, segment, users, numerator, all users, all numerator, denominator, all
    denominator) of a ratio or mean metric over the eligible users."""
    if metric.touchpoint:
        relation, columns = touchpoint_activity(metric, "_touchpoints"), touchpoint_daily_schema().names
    else:
        relation, columns = "_activity", activity.column_names
    values = metric_values_sql(metric, as_of, columns, users="_eligible", activity=relation)
    return [
        (position, metric.id, *row)
        for position, *row in con.sql(f"""
        WITH v AS ({values}),
        overall AS (SELECT count(*) AS n, sum(numerator) AS s, sum(denominator) AS d FROM v)
        SELECT d.position, d.segment_id, count(v.user_id), coalesce(sum(v.numerator), 0), any_value(o.n),
               coalesce(any_value(o.s), 0), coalesce(sum(v.denominator), 0), coalesce(any_value(o.d), 0)
        FROM _segments d CROSS JOIN overall o
        LEFT JOIN (SELECT DISTINCT segment_id, user_id FROM _members) m ON m.segment_id = d.segment_id
        LEFT JOIN v ON v.user_id = m.user_id
        GROUP BY d.segment_id, d.position
    """).fetchall()
    ]


def _baseline_table(rows: list[tuple], definitions: Sequence[SegmentDefinition], as_of: date) -> pa.Table:
    """Rates, ratio and p-value from the per-segment counts (a handful of rows, not users); a ratio or mean
    metric's rows also carry their denominators (its successes and p-value are then NULL)."""
    kinds = {d.id: d.kind for d in definitions}
    out = []
    for _, metric_id, segment_id, seg_n, seg_s, all_n, all_s, *denominators in sorted(rows, key=lambda r: r[0]):
        seg_d, all_d = denominators or (seg_n, all_n)
        seg_rate = seg_s / seg_d if seg_d else None
        all_rate = all_s / all_d if all_d else None
        row = {
            "as_of": as_of,
            "segment_id": segment_id,
            "kind": kinds[segment_id],
            "metric": metric_id,
            "segment_users": seg_n,
            "segment_rate": seg_rate,
            "eligible_users": all_n,
            "eligible_rate": all_rate,
            "ratio": seg_rate / all_rate if seg_rate is not None and all_rate else None,
        }
        if not denominators:  # a share: successes of users, and the members against the others
            row |= {
                "segment_successes": seg_s,
                "eligible_successes": all_s,
                "p_value": two_proportion_p_value_scalar(seg_s, seg_n, all_s - seg_s, all_n - seg_n),
            }
        out.append(row)
    return pa.Table.from_pylist(out, schema=BASELINE_SCHEMA)
