"""Contexts & campaigns: for each campaign, its audience, in treatment or holdout.

Arm assignment is a hash of campaign and user, so a user stays in the same arm across runs, days and
engines: `md5(campaign_id || ':' || user_id)`, its first 13 hex digits read as a fraction of 16^13.
A user whose bucket is below the campaign's holdout share is held out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date

import duckdb
import pyarrow as pa

from assets.lake import connect
from assets.pyramid_map import Campaign

HEX_DIGITS = 13  # 52 bits: exact in a double, so SQL and Python agree to the last digit


def arm_bucket_sql(campaign_expr: str, user_expr: str) -> str:
    """A DuckDB expression giving the user's bucket in [0, 1) for the campaign."""
    return (
        f"(('0x' || substr(md5({campaign_expr} || ':' || {user_expr}), 1, {HEX_DIGITS}))::UBIGINT / {16**HEX_DIGITS}.0)"
    )


def arm_bucket(campaign_id: str, user_id: str) -> float:
    """The same bucket as `arm_bucket_sql`, for one user in Python (the generator, tests, debugging)."""
    digest = hashlib.md5(f"{campaign_id}:{user_id}".encode()).hexdigest()
    return int(digest[:HEX_DIGITS], 16) / 16**HEX_DIGITS


def holdout_mask(con: duckdb.DuckDBPyConnection, user_ids: pa.Array, campaign_id: str, holdout: float) -> pa.Array:
    """True where the user is held out of the campaign, in the order of `user_ids`."""
    users = pa.table({"user_id": user_ids})
    con.register("_arm_users", users)
    try:
        return (
            con.sql(
                f"SELECT {arm_bucket_sql('?', 'user_id')} < ? AS held_out FROM _arm_users",  # insertion order is preserved  # noqa: E501
                params=[campaign_id, holdout],
            )
            .to_arrow_table()
            .column("held_out")
            .combine_chunks()
        )
    finally:
        con.unregister("_arm_users")


AUDIENCE_SCHEMA = pa.schema(
    [
        ("as_of", pa.date32()),
        ("campaign_id", pa.string()),
        ("user_id", pa.string()),
        ("segment_id", pa.string()),
        ("context", pa.string()),
        ("arm", pa.string()),
        ("priority", pa.int64()),
    ]
)


def campaign_audiences(membership: pa.Table, campaigns: Sequence[Campaign], as_of: date) -> pa.Table:
    """Every campaign's audience: the users in any of its segments, in treatment or holdout.

    `segment_id` is the first of the campaign's segments (in map order) that the user is in.
    Sorted by campaign, user.
    """
    if not campaigns:
        return AUDIENCE_SCHEMA.empty_table()
    con = connect()
    try:
        con.register("_membership", membership.select(["segment_id", "user_id"]))
        con.register("_campaign_segments", _campaign_segments(campaigns))
        audiences = con.sql(
            f"""
            WITH candidates AS (
                SELECT c.campaign_id, m.user_id, c.segment_id, c.segment_order, c.context, c.priority, c.holdout
                FROM _campaign_segments c JOIN _membership m USING (segment_id)
            ), audience AS (
                SELECT campaign_id, user_id, arg_min(segment_id, segment_order) AS segment_id,
                       any_value(context) AS context, any_value(priority) AS priority, any_value(holdout) AS holdout
                FROM candidates GROUP BY campaign_id, user_id
            )
            SELECT ?::DATE AS as_of, campaign_id, user_id, segment_id, context,
                   CASE WHEN {arm_bucket_sql("campaign_id", "user_id")} < holdout THEN 'holdout' ELSE 'treatment' END
                       AS arm,
                   priority
            FROM audience ORDER BY campaign_id, user_id
            """,
            params=[as_of],
        ).to_arrow_table()
    finally:
        con.close()
    return audiences.cast(AUDIENCE_SCHEMA)


def _campaign_segments(campaigns: Sequence[Campaign]) -> pa.Table:
    """One row per campaign and listed segment, with the segment's position in the campaign's list."""
    rows = [
        {
            "campaign_id": c.id,
            "segment_id": segment_id,
            "segment_order": order,
            "context": c.context,
            "priority": c.priority,
            "holdout": c.holdout,
        }
        for c in campaigns
        for order, segment_id in enumerate(c.segments)
    ]
    schema = pa.schema(
        [
            ("campaign_id", pa.string()),
            ("segment_id", pa.string()),
            ("segment_order", pa.int64()),
            ("context", pa.string()),
            ("priority", pa.int64()),
            ("holdout", pa.float64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)
