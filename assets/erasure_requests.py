"""Erasure requests in the actionable layer: the day's requests (the unreadable ones quarantined) and the
cumulative list of erased users, the legal record (the cleaning machinery is assets/actionable.py)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from assets.actionable import (
    CleanResult,
    conformed,
    erasure_checks,
    erasure_typing,
)
from assets.contract import SCHEMAS
from assets.judging import Plan, drop_judged, fate_details, judge, quarantine_rows


def clean_erasures(con: duckdb.DuckDBPyConnection, raw: pa.Table) -> CleanResult:
    """The day's erasure requests, one row per user (earliest requested_at). A request without a
    user or that did not parse is quarantined; one with an unreadable timestamp is honoured with a
    NULL requested_at (counted in details['bad_timestamp_honoured']). Further requests of the same
    user in the partition count as duplicates_removed."""
    plan = Plan("erasure_requests", erasure_typing(), erasure_checks(), dedup_key="user_id")
    judged = judge(con, plan, raw, None, None)
    try:
        details = fate_details(con, judged)
        details["bad_timestamp_honoured"] = int(
            con.sql(
                f"SELECT count(*) FROM {judged} WHERE len(reasons) = 0 AND user_id IS NOT NULL AND requested_at IS NULL"
            ).fetchall()[0][0]
        )
        table = (
            con.sql(f"""
            SELECT user_id, min(requested_at) AS requested_at FROM {judged}
            WHERE fate <> 'quarantined' AND user_id IS NOT NULL GROUP BY user_id ORDER BY user_id
        """)
            .to_arrow_table()
            .cast(SCHEMAS["erased_users"])
        )
        quarantine = quarantine_rows(con, judged, "erasure_requests")
    finally:
        drop_judged(con, judged)
    result = CleanResult(
        table=table,
        quarantine=quarantine,
        raw_rows=raw.num_rows,
        duplicates_removed=details["duplicates"],
        details=details,
    )
    return result.assert_balanced("erasure_requests")


def update_erasures(
    con: duckdb.DuckDBPyConnection, raw: pa.Table, previous: pa.Table | None, day: CleanResult | None = None
) -> pa.Table:
    """Every user who asked to be erased up to this partition: `previous` plus the day's requests,
    one row per user with the earliest requested_at (NULL only if no readable timestamp ever came).
    `day`: the day's `clean_erasures(con, raw)` when the caller has it already."""
    schema = SCHEMAS["erased_users"]
    con.register("_erased_previous", conformed(previous, schema))
    con.register("_erased_today", (day if day is not None else clean_erasures(con, raw)).table)
    try:
        return (
            con.sql("""
            SELECT user_id, min(requested_at) AS requested_at
            FROM (SELECT * FROM _erased_previous UNION ALL SELECT * FROM _erased_today)
            GROUP BY user_id ORDER BY user_id
        """)
            .to_arrow_table()
            .cast(schema)
        )
    finally:
        con.unregister("_erased_previous")
        con.unregister("_erased_today")


def erasure_request_problems(quarantine: pa.Table, limit: int = 10) -> list[str]:
    """The first `limit` quarantined erasure requests as `file:line (reasons)`: where to look, no user id."""
    rows = quarantine.select(["_source_file", "_source_line", "reasons"]).slice(0, limit).to_pylist()
    return [f"{r['_source_file']}:{r['_source_line']} ({', '.join(r['reasons'])})" for r in rows]
