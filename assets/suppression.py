"""Who may not be reached on which channel: opt-outs (the suppression table) and marketing consent.

The map declares the rules (`consent` in pyramid.yaml); no event name or channel is known here.

- `update_suppressions`: the suppression table as of a day is the previous day's plus the day's
  opt-out events (actionable events of `consent.opt_out.event_type`), one row per user and channel with
  the earliest `since`. The channel is the event's touchpoint's channel in the map, else the event's own
  `channel`, else `*` (every channel: an opt-out we cannot place suppresses everywhere). It only grows;
  erasure removes an erased user's rows like any other per-user table.
- `update_marketing_consent`: the marketing consent snapshot as of a day, from the day's accepted
  profile rows (raw rows not in the profiles quarantine) merged with the previous snapshot: the latest
  `updated_at` wins, ties go to the least consent (NULL, then false, then true), as for the profile
  snapshot. A value that is not `true`/`false`, or the whole column when the profiles suite withheld it
  that day, is NULL: unknown, which is no consent.
- `assets.touchpoints.touchpoint_exports` uses both (`Reach`): a user is exported on a channel only if
  not suppressed there (nor on `*`), and, on a marketing channel, only with marketing consent TRUE.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from assets.contract import CANONICAL_COLUMNS
from assets.pyramid_map import Consent, Touchpoint
from assets.quality.typed_batch import flag_sql, text_sql, timestamp_sql

ALL_CHANNELS = "*"
UTC = pa.timestamp("us", tz="UTC")
SUPPRESSION_SCHEMA = pa.schema([("user_id", pa.string()), ("channel", pa.string()), ("since", UTC)])
MARKETING_SCHEMA = pa.schema([("user_id", pa.string()), ("updated_at", UTC), ("consent_marketing", pa.bool_())])


def _conformed(previous: pa.Table | None, schema: pa.Schema) -> pa.Table:
    return (previous if previous is not None else schema.empty_table()).select(schema.names).cast(schema)


def _touchpoint_channels(touchpoints: Sequence[Touchpoint]) -> pa.Table:
    return pa.table(
        {
            "touchpoint_id": pa.array([t.id for t in touchpoints], pa.string()),
            "tp_channel": pa.array([t.channel for t in touchpoints], pa.string()),
        }
    )


def update_suppressions(
    con: duckdb.DuckDBPyConnection,
    events: pa.Table,
    previous: pa.Table | None,
    consent: Consent,
    touchpoints: Sequence[Touchpoint],
) -> pa.Table:
    """`previous` plus the day's opt-outs among `events` (actionable events): one row per user and channel."""
    con.register("_supp_previous", _conformed(previous, SUPPRESSION_SCHEMA))
    con.register("_supp_events", events.select(["user_id", "event_type", "channel", "touchpoint_id", "occurred_at"]))
    con.register("_supp_touchpoints", _touchpoint_channels(touchpoints))
    try:
        return (
            con.sql(
                f"""
            SELECT user_id, channel, min(since) AS since FROM (
                SELECT * FROM _supp_previous
                UNION ALL
                SELECT e.user_id, coalesce(t.tp_channel, nullif(trim(e.channel), ''), '{ALL_CHANNELS}'), e.occurred_at
                FROM _supp_events AS e LEFT JOIN _supp_touchpoints AS t USING (touchpoint_id)
                WHERE e.event_type = $event_type AND e.user_id IS NOT NULL
            ) GROUP BY user_id, channel ORDER BY user_id, channel
        """,
                params={"event_type": consent.opt_out.event_type},
            )
            .to_arrow_table()
            .cast(SUPPRESSION_SCHEMA)
        )
    finally:
        for name in ("_supp_previous", "_supp_events", "_supp_touchpoints"):
            con.unregister(name)


def update_marketing_consent(
    con: duckdb.DuckDBPyConnection,
    raw_profiles: pa.Table,
    quarantine: pa.Table,
    previous: pa.Table | None,
    consent: Consent,
    withheld: bool,
) -> pa.Table:
    """The marketing consent snapshot as of the day (see the module docstring); `withheld`: the
    profiles suite withheld the marketing column today, so today's updates make it unknown."""
    column = consent.marketing_column
    if column not in CANONICAL_COLUMNS["profiles"]:
        raise ValueError(
            f"consent.marketing_column {column!r} is not a profiles column; "
            f"expected one of {', '.join(CANONICAL_COLUMNS['profiles'])}"
        )
    flag = f"CASE {flag_sql(f'r.{column}')} WHEN 'true' THEN true WHEN 'false' THEN false END"
    con.register("_mc_previous", _conformed(previous, MARKETING_SCHEMA))
    con.register(
        "_mc_raw", raw_profiles.select(["user_id", "updated_at", column, "_source_file", "_source_line", "_raw_text"])
    )
    con.register("_mc_refused", quarantine.select(["_source_file", "_source_line"]))
    try:
        return (
            con.sql(f"""
            SELECT user_id, updated_at, consent_marketing FROM (
                SELECT * FROM _mc_previous
                UNION ALL
                SELECT {text_sql("r.user_id")}, {timestamp_sql("r.updated_at")},
                       {"NULL::BOOLEAN" if withheld else flag}
                FROM _mc_raw AS r ANTI JOIN _mc_refused AS q USING (_source_file, _source_line)
                WHERE r._raw_text IS NULL
            ) WHERE user_id IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY user_id
                                       ORDER BY updated_at DESC NULLS LAST, consent_marketing ASC NULLS FIRST) = 1
            ORDER BY user_id
        """)
            .to_arrow_table()
            .cast(MARKETING_SCHEMA)
        )
    finally:
        for name in ("_mc_previous", "_mc_raw", "_mc_refused"):
            con.unregister(name)
