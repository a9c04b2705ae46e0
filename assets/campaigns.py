"""Contexts & campaigns: for each campaign, its audience, in treatment or holdout.

A campaign that declares `contexts` admits, of its segments' members, only those for whom a context
holds on the day (its `when` over the user's features and the serving day's calendar, assets/calendar.py,
run in the SQL sandbox); `context_id` records the first context, in map order, that held. A feature that
is NULL (a window not yet covered) satisfies no condition. Without `contexts` the segments alone decide
and `context_id` is NULL.

Arm assignment is a hash of campaign and user, so a user stays in the same arm across runs, days and
engines: `md5(campaign_id || ':' || user_id)`, its first 13 hex digits read as a fraction of 16^13.
A user whose bucket is below the campaign's holdout share is held out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date

import duckdb
import polars as pl
import pyarrow as pa

from assets.calendar import CALENDAR_COLUMNS, calendar_values
from assets.lake import connect
from assets.pyramid_map import Campaign
from assets.sql_guard import require_safe, sandboxed_connection

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
        ("context_id", pa.string()),
    ]
)
CONTEXT_MATCH_SCHEMA = pa.schema([("campaign_id", pa.string()), ("user_id", pa.string()), ("context_id", pa.string())])


def deciding_contexts(campaigns: Sequence[Campaign]) -> bool:
    """Whether any campaign declares contexts (the audiences then read the day's features)."""
    return any(c.contexts for c in campaigns)


def context_matches(features: pa.Table, campaigns: Sequence[Campaign], as_of: date) -> pa.Table:
    """Per campaign that declares contexts, each user for whom one holds on the serving day of `as_of`, with
    the first such context (CONTEXT_MATCH_SCHEMA). `features` is the day's user_features."""
    readable = [*features.column_names, *CALENDAR_COLUMNS]
    calendar = ", ".join(f"{value} AS {name}" for name, value in calendar_values(as_of).items())
    con = sandboxed_connection()
    parts = []
    try:
        con.register("_features", features)
        for campaign in (c for c in campaigns if c.contexts):
            cases = " ".join(
                f"WHEN ({require_safe(x.when, readable, where=f'campaign {campaign.id!r} context {x.id!r}')}) THEN ?"
                for x in campaign.contexts
            )
            sql = (
                f"SELECT * FROM (SELECT ?::VARCHAR AS campaign_id, user_id, CASE {cases} END AS context_id "
                f"FROM (SELECT *, {calendar} FROM _features)) WHERE context_id IS NOT NULL"
            )
            parts.append(con.sql(sql, params=[campaign.id, *(x.id for x in campaign.contexts)]).to_arrow_table())
    finally:
        con.close()
    return (
        pa.concat_tables([p.cast(CONTEXT_MATCH_SCHEMA) for p in parts]) if parts else CONTEXT_MATCH_SCHEMA.empty_table()
    )


def campaign_audiences(
    membership: pa.Table, campaigns: Sequence[Campaign], as_of: date, features: pa.Table | None = None
) -> pa.Table:
    """Every campaign's audience: the users in any of its segments (and, where the campaign declares
    contexts, for whom one holds: `features` is then the day's user_features), in treatment or holdout.

    `segment_id` is the first of the campaign's segments (in map order) that the user is in.
    Sorted by campaign, user.
    """
    if not campaigns:
        return AUDIENCE_SCHEMA.empty_table()
    if deciding_contexts(campaigns) and features is None:
        raise ValueError("campaigns with contexts need the day's user_features")
    matches = context_matches(features, campaigns, as_of) if features is not None else None
    con = connect()
    try:
        con.register("_membership", membership.select(["segment_id", "user_id"]))
        con.register("_campaign_segments", _campaign_segments(campaigns))
        con.register("_context_matches", matches if matches is not None else CONTEXT_MATCH_SCHEMA.empty_table())
        audiences = con.sql(
            f"""
            WITH candidates AS (
                SELECT c.campaign_id, m.user_id, c.segment_id, c.segment_order, c.context, c.priority, c.holdout,
                       c.decides
                FROM _campaign_segments c JOIN _membership m USING (segment_id)
            ), audience AS (
                SELECT campaign_id, user_id, arg_min(segment_id, segment_order) AS segment_id,
                       any_value(context) AS context, any_value(priority) AS priority, any_value(holdout) AS holdout,
                       any_value(decides) AS decides
                FROM candidates GROUP BY campaign_id, user_id
            )
            SELECT ?::DATE AS as_of, campaign_id, user_id, segment_id, context,
                   CASE WHEN {arm_bucket_sql("campaign_id", "user_id")} < holdout THEN 'holdout' ELSE 'treatment' END
                       AS arm,
                   priority, x.context_id
            FROM audience LEFT JOIN _context_matches x USING (campaign_id, user_id)
            WHERE NOT decides OR x.context_id IS NOT NULL
            ORDER BY campaign_id, user_id
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
            "decides": bool(c.contexts),
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
            ("decides", pa.bool_()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def admitted_by_context(membership: pa.Table, audiences: pa.Table, campaigns: Sequence[Campaign]) -> dict[str, dict]:
    """Per campaign that declares contexts: its segments' distinct members, the audience its contexts
    admitted, that share, and the audience per context."""
    members = pl.from_arrow(membership.select(["segment_id", "user_id"]))
    audience = pl.from_arrow(audiences.select(["campaign_id", "context_id"]))
    admitted = {}
    for campaign in (c for c in campaigns if c.contexts):
        candidates = members.filter(pl.col("segment_id").is_in(list(campaign.segments)))["user_id"].n_unique()
        mine = audience.filter(pl.col("campaign_id") == campaign.id)
        per_context = dict(mine.group_by("context_id").len().iter_rows())
        admitted[campaign.id] = {
            "segment_members": candidates,
            "admitted": mine.height,
            "admitted_share": round(mine.height / candidates, 4) if candidates else None,
            "per_context": {x.id: per_context.get(x.id, 0) for x in campaign.contexts},
        }
    return admitted
