"""The profile snapshot of the actionable layer: the day's valid profile updates merged into the previous
snapshot, latest update winning, PII removed, consent known (the cleaning machinery is assets/actionable.py)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from assets.actionable import (
    CleanResult,
    conformed,
    profile_checks,
    profile_typing,
    validate,
)
from assets.contract import CANONICAL_COLUMNS, SCHEMAS
from assets.judging import Plan, accepted_rows, drop_judged, fate_details, judge, quarantine_rows
from assets.pyramid_map import Actionable
from assets.quality.outcome import withheld_columns

if TYPE_CHECKING:
    from assets.quality.outcome import ValidationOutcome

PROFILE_VALUES = ["signup_at", "country", "birth_year", "plan", "consent_personalization"]
# Among updates of a user with the same updated_at (a contradiction), the kept one is the one with the
# least consent (NULL, then false, then true: when in doubt, no consent), then the greatest
# (signup_at, country, birth_year, plan), NULLs lowest. Equal on all of these means identical rows.
PROFILE_TIE_BREAK = (
    "updated_at DESC, consent_personalization ASC NULLS FIRST, signup_at DESC NULLS LAST, "
    "country DESC NULLS LAST, birth_year DESC NULLS LAST, plan DESC NULLS LAST"
)


def update_profiles(
    con: duckdb.DuckDBPyConnection,
    raw: pa.Table,
    previous: pa.Table | None,
    ds: date,
    settings: Actionable,
    *,
    validation: ValidationOutcome | None = None,
    withhold: bool = True,
) -> CleanResult:
    """The profile snapshot as of `ds`: `previous` (the snapshot of ds - 1) updated with the valid rows
    of the day, latest `updated_at` winning per user (ties: PROFILE_TIE_BREAK). No PII column.

    Exact copies of a landed row (every column equal) count as duplicates_removed; rows without a
    user, with a missing or bad updated_at/signup_at, a future one, or a bad birth_year are
    quarantined. `details['contradictions']` counts (user, updated_at) pairs seen with different
    values, the previous snapshot's row included. actionable_rows = the accepted raw rows; `table` is
    the whole snapshot.

    A withheld column is NULL in the day's accepted rows before they merge: the users updated that
    day have an unknown value until their next update; the other users keep theirs."""
    raw_columns = CANONICAL_COLUMNS["profiles"]
    validation = validation if validation is not None else validate(raw, "profiles", ds, settings)
    withheld = [c for c in withheld_columns(validation) if c in SCHEMAS["profiles"].names] if withhold else []
    plan = Plan(
        "profiles",
        profile_typing(ds, settings),
        profile_checks(ds, settings),
        dedup_key=f"to_json([{', '.join(f'raw_{c}' for c in raw_columns)}, _raw_text])::VARCHAR",
        pii=tuple(settings.pii),
    )
    judged = judge(con, plan, raw, None, None, validation)
    try:
        details = fate_details(con, judged)
        details["unknown_consent"] = int(
            con.sql(
                f"SELECT count(*) FROM {judged} WHERE fate = 'accepted' AND consent_personalization IS NULL"
            ).fetchall()[0][0]
        )
        accepted = accepted_rows(con, judged, SCHEMAS["profiles"], withheld)
        quarantine = quarantine_rows(con, judged, "profiles")
    finally:
        drop_judged(con, judged)
    snapshot, contradictions = _merge_snapshot(con, previous, accepted)
    details.update(contradictions=contradictions, snapshot_users=snapshot.num_rows)
    result = CleanResult(
        table=snapshot,
        quarantine=quarantine,
        raw_rows=raw.num_rows,
        duplicates_removed=details["duplicates"],
        details=details,
        actionable_rows=accepted.num_rows,
        validation=validation,
        withheld=withheld,
    )
    return result.assert_balanced("profiles")


def _merge_snapshot(
    con: duckdb.DuckDBPyConnection, previous: pa.Table | None, accepted: pa.Table
) -> tuple[pa.Table, int]:
    schema = SCHEMAS["profiles"]
    con.register("_profiles_previous", conformed(previous, schema))
    con.register("_profiles_accepted", accepted)
    values = ", ".join(PROFILE_VALUES)
    try:
        con.execute("""CREATE OR REPLACE TEMP VIEW _profiles_candidates AS
                       SELECT * FROM _profiles_previous UNION ALL SELECT * FROM _profiles_accepted""")
        contradictions = con.sql(f"""
            SELECT count(*) FROM (
                SELECT user_id, updated_at FROM _profiles_candidates GROUP BY user_id, updated_at
                HAVING count(DISTINCT row({values})) > 1
            )
        """).fetchall()[0][0]
        snapshot = (
            con.sql(f"""
            SELECT {", ".join(schema.names)} FROM _profiles_candidates
            QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY {PROFILE_TIE_BREAK}) = 1
            ORDER BY user_id
        """)
            .to_arrow_table()
            .cast(schema)
        )
    finally:
        con.execute("DROP VIEW IF EXISTS _profiles_candidates")
        con.unregister("_profiles_previous")
        con.unregister("_profiles_accepted")
    return snapshot, int(contradictions)
