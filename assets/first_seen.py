"""Users known from their activity, for a map that declares no profiles (docs/contracts.md, "Sources of any
shape"): the profile snapshot and the marketing consent made from the events and transactions that landed.

- A user is first seen in the earliest landing day with an event, or a transaction with status `completed`,
  that has a user id and a readable `occurred_at` no later than the end of the landing day plus the clock
  skew (the same typing and bound as the actionable layer). The row is added to the snapshot that day
  with `signup_at` = `updated_at` = the earliest such `occurred_at` of that day; country, plan and
  birth_year are NULL (age band `unknown`). Later days never change it: like a profile snapshot, it is
  kept day to day, and erasure removes it (assets/erasure.py).
- Consent is the map's `actionable.consent_default`, never assumed: `granted` is TRUE, `denied` FALSE,
  for personalization (the snapshot's `consent_personalization`) and for marketing (`marketing_consent`).
  Applying it is a privacy decision, recorded with its value, basis and the number of users it covers
  (`consent_decision`; counts only, never ids).

Rows of the activity sources that do not qualify (no user, a bad or future timestamp, a transaction not
completed) make nobody known; the actionable layer then refuses them as it would without a profile.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pyarrow as pa

from assets.actionable import conformed
from assets.contract import SCHEMAS
from assets.pyramid_map import Actionable, ConsentDefault
from assets.quality.typed_batch import day_parameters, flag_sql, text_sql, timestamp_sql
from assets.suppression import MARKETING_SCHEMA

FIRST_SEEN = "first event or completed transaction"  # where a user without a profile comes from


def granted(value: str) -> bool:
    return value == "granted"


def _seen_sql(ds: date, settings: Actionable) -> str:
    """SQL: per user, the earliest qualifying activity instant of the day's raw events and transactions."""
    bound = day_parameters(ds, int(settings.max_clock_skew_minutes))["latest_valid_time"]  # as the future check
    typed = f"{text_sql('user_id')} AS user_id, {timestamp_sql('occurred_at')} AS occurred_at"
    return f"""
        SELECT user_id, min(occurred_at) AS signup_at FROM (
            SELECT {typed} FROM _seen_events
            UNION ALL
            SELECT {typed} FROM _seen_transactions WHERE {flag_sql("status")} = 'completed'
        ) WHERE user_id IS NOT NULL AND occurred_at IS NOT NULL AND occurred_at <= TIMESTAMPTZ '{bound}'
        GROUP BY user_id
    """


def first_seen_snapshot(
    con: duckdb.DuckDBPyConnection,
    raw_events: pa.Table,
    raw_transactions: pa.Table,
    previous: pa.Table | None,
    ds: date,
    settings: Actionable,
) -> tuple[pa.Table, int]:
    """The profile snapshot as of `ds` (SCHEMAS['profiles']) and the number of users first seen that day."""
    schema = SCHEMAS["profiles"]
    consent = settings.consent_default
    if consent is None:
        raise ValueError("actionable.consent_default is required when the map declares no profiles")
    con.register("_seen_events", raw_events.select(["user_id", "occurred_at"]))
    con.register("_seen_transactions", raw_transactions.select(["user_id", "occurred_at", "status"]))
    con.register("_seen_previous", conformed(previous, schema))
    try:
        new = con.sql(f"""
            SELECT user_id, signup_at AS updated_at, signup_at, NULL::VARCHAR AS country,
                   NULL::INTEGER AS birth_year, NULL::VARCHAR AS plan,
                   {str(granted(consent.personalization)).upper()} AS consent_personalization
            FROM ({_seen_sql(ds, settings)}) ANTI JOIN _seen_previous USING (user_id)
        """).to_arrow_table()
        con.register("_seen_new", new)
        snapshot = (
            con.sql(f"""
            SELECT {", ".join(schema.names)} FROM (SELECT * FROM _seen_previous UNION ALL SELECT * FROM _seen_new)
            ORDER BY user_id
        """)
            .to_arrow_table()
            .cast(schema)
        )
    finally:
        for name in ("_seen_events", "_seen_transactions", "_seen_previous", "_seen_new"):
            con.unregister(name)
    return snapshot, new.num_rows


def default_marketing_consent(snapshot: pa.Table, consent: ConsentDefault) -> pa.Table:
    """Every known user's marketing consent as the map's default says (the snapshot's users and instants)."""
    flags = pa.array([granted(consent.marketing)] * snapshot.num_rows, pa.bool_())
    return pa.table(
        {"user_id": snapshot["user_id"], "updated_at": snapshot["updated_at"], "consent_marketing": flags},
        schema=MARKETING_SCHEMA,
    )


def consent_decision(consent: ConsentDefault, users: int, new_users: int) -> dict[str, str | int]:
    """The privacy decision of a day without profiles, as metadata: the defaults, their basis, and how many
    users they apply to (all known users; those first seen that day). Counts only."""
    return {
        "privacy_decision": "consent from the map's actionable.consent_default (no profiles declared)",
        "consent_default/personalization": consent.personalization,
        "consent_default/marketing": consent.marketing,
        "consent_default/basis": consent.basis,
        "consent_default/users": users,
        "consent_default/new_users": new_users,
    }
