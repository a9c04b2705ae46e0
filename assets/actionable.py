"""Actionable layer: the raw rows typed, validated and deduplicated; the rest quarantined with reasons.

Validation is the source's Great Expectations suite (`expectations/<source>.json`, run by
`assets.quality.validation.validate_raw`): every row expectation (`meta.decides: row`) refuses the rows it finds
unexpected with its `meta.reason`; every column expectation (`meta.decides: column`) that fails with
severity `critical` withholds its column: the column is kept in the schema and set to NULL in every
actionable row of the partition (so readers never break on a missing column), and the column status
records why. What a suite cannot say stays here as declared `RowCheck`s, SQL conditions TRUE when
the row breaks the rule: `orphan_user` (needs the profile snapshot), `unparseable_row`, and the
erasure requests' `missing_user_id` (erasures have no suite). A refused row carries every reason that
applies, the suite's in suite order then ours; the one exception is `unparseable_row`, the only reason
of a row that did not parse (all its columns are NULL, so the others say nothing).

Typing is one implementation, `assets.quality.typed_batch.column_sql`, shared with the validation; the stored
types (INTEGER birth_year within range, BOOLEAN consent) are built on its values here.

Inside the checks, `raw_<column>` is the landed VARCHAR and `<column>` the typed value:
- text columns are trimmed, an empty string is NULL;
- timestamps must be ISO 8601 date-times with an explicit offset (`Z`, `+02:00`, `-0500`, `+05`), and
  are converted to the UTC instant (TIMESTAMPTZ); anything else (no offset, a zone name, a date alone,
  lower-case `t`/`z`, more than 6 fraction digits) is NULL, i.e. `bad_timestamp`;
- "future" means later than the end of the landing day `ds` (UTC) plus `max_clock_skew_minutes`.

Validation comes first, deduplication second, and deduplication looks at every row with a key
(event_id, txn_id; for erasure requests user_id; for profiles the whole landed row):
- a row whose key was accepted in a lookback partition (`seen_ids`) is a duplicate, whatever it holds;
- among the copies of a key within the partition one is kept: the one with the fewest reasons, then
  the first as landed (`_source_file`, `_source_line`). A clean copy therefore wins over a broken one,
  and two copies of a bad row make one quarantined row and one duplicate: a duplicate counts once.
- rows without a key (missing, or unparseable) are never duplicates of each other.

For every result: raw rows = actionable rows + quarantined rows + duplicates removed, asserted here.
The machinery that judges the rows (typing, reasons, fates) is `assets.judging`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from assets.contract import CANONICAL_COLUMNS, SCHEMAS
from assets.judging import (
    UNPARSEABLE,
    Plan,
    RowCheck,
    accepted_rows,
    conflicting_copies,
    drop_judged,
    fate_details,
    judge,
    quarantine_rows,
    write_accepted_rows,
)
from assets.pyramid_map import Actionable
from assets.quality.outcome import ValidationOutcome, withheld_columns
from assets.quality.suites import Suite, load_suite, suite_path, with_kwargs
from assets.quality.typed_batch import column_sql, flag_sql, raw_row_count, text_sql, timestamp_sql
from assets.quality.validation import validate_raw

EVENT_TYPES = (
    "session_start",
    "page_view",
    "screen_view",
    "search",
    "feature_use",
    "impression",
    "click",
    "conversion",
    "unsubscribe",
)
TXN_TYPES = ("deposit", "card_payment", "transfer_in", "transfer_out")
ABSURD_AMOUNT = 1_000_000.0  # a single transaction above this is refused as `absurd_amount`
MIN_BIRTH_YEAR = 1900  # birth_year must be 4 digits within MIN_BIRTH_YEAR .. the year of ds


def empty_table(name: str) -> pa.Table:
    """An empty actionable table (`events`, `transactions`, `profiles`, `erased_users`, `quarantine`)."""
    return SCHEMAS[name].empty_table()


class AccountingError(AssertionError):
    """Rows were lost or invented: raw != actionable + quarantined + duplicates removed."""


@dataclass
class CleanResult:
    """What one partition of a source became.

    `actionable_rows` is the number of raw rows accepted; it defaults to `table.num_rows`, and differs
    only where `table` is not the accepted rows themselves (the cumulative profile snapshot).
    """

    table: pa.Table
    quarantine: pa.Table
    raw_rows: int
    duplicates_removed: int
    details: dict = field(default_factory=dict)
    actionable_rows: int | None = None
    validation: ValidationOutcome | None = None  # the suite's outcome (None: no suite)
    withheld: list[str] = field(default_factory=list)  # columns set to NULL for this partition
    written: Path | None = None  # the accepted rows' file, when they were written there, not kept in `table`

    def accounting(self) -> dict:
        actionable = self.table.num_rows if self.actionable_rows is None else self.actionable_rows
        quarantined = self.quarantine.num_rows
        return {
            "raw_rows": self.raw_rows,
            "actionable_rows": actionable,
            "quarantined_rows": quarantined,
            "duplicates_removed": self.duplicates_removed,
            "balanced": self.raw_rows == actionable + quarantined + self.duplicates_removed,
        }

    def assert_balanced(self, source: str) -> CleanResult:
        figures = self.accounting()
        if not figures["balanced"]:
            raise AccountingError(
                f"{source}: {figures['raw_rows']} raw rows != {figures['actionable_rows']} actionable + "
                f"{figures['quarantined_rows']} quarantined + {figures['duplicates_removed']} duplicates removed"
            )
        return self


# --- SQL building blocks ---------------------------------------------------------------------------


def _text(column: str) -> str:
    return text_sql(f"raw_{column}")


def _timestamp(column: str) -> str:
    return timestamp_sql(f"raw_{column}")


def _typed(source: str) -> dict[str, str]:
    """The shared typing (assets.quality.typed_batch.column_sql) over the `raw_<column>` VARCHARs."""
    return column_sql(source, lambda column: f"raw_{column}")


def _missing(column: str) -> str:
    return f"{column} IS NULL"


ORPHAN = RowCheck("orphan_user", "user_id IS NOT NULL AND NOT _known_user", "user_id is not in the profile snapshot")


def event_checks(ds: date, settings: Actionable) -> list[RowCheck]:
    """What the events suite cannot say (it needs the profile snapshot or the raw text)."""
    return [UNPARSEABLE, ORPHAN]


def transaction_checks(ds: date, settings: Actionable) -> list[RowCheck]:
    return [UNPARSEABLE, ORPHAN]


def profile_checks(ds: date, settings: Actionable) -> list[RowCheck]:
    return [UNPARSEABLE]


def erasure_checks() -> list[RowCheck]:
    """Erasure requests have no suite. An erasure is honoured even when its timestamp is unreadable
    (requested_at is NULL then)."""
    return [UNPARSEABLE, RowCheck("missing_user_id", _missing("user_id"), "user_id is missing or blank")]


# --- typing per source: output column -> SQL over the raw_ columns ----------------------------------


def _event_typing() -> dict[str, str]:
    typed = _typed("events")
    return {c: typed[c] for c in SCHEMAS["events"].names}  # properties: the JSON text as landed


def _transaction_typing() -> dict[str, str]:
    typed = _typed("transactions")
    return {c: typed[c] for c in SCHEMAS["transactions"].names}  # amount: finite DOUBLE or NULL


def profile_typing(ds: date, settings: Actionable) -> dict[str, str]:
    if settings.consent_column not in CANONICAL_COLUMNS["profiles"]:
        raise ValueError(
            f"actionable.consent_column {settings.consent_column!r} is not a profiles column; "
            f"expected one of {', '.join(CANONICAL_COLUMNS['profiles'])}"
        )
    typed = _typed("profiles")
    year = typed["birth_year"]
    consent = flag_sql(f"raw_{settings.consent_column}")
    return {
        "user_id": typed["user_id"],
        "updated_at": typed["updated_at"],
        "signup_at": typed["signup_at"],
        "country": typed["country"],
        "birth_year": f"CASE WHEN {year} BETWEEN {MIN_BIRTH_YEAR} AND {ds.year} THEN CAST({year} AS INTEGER) END",
        "plan": typed["plan"],
        "consent_personalization": f"CASE {consent} WHEN 'true' THEN true WHEN 'false' THEN false END",
    }


def erasure_typing() -> dict[str, str]:
    return {"user_id": _text("user_id"), "requested_at": _timestamp("requested_at")}


# --- the cleaning machinery ------------------------------------------------------------------------


def _seen_keys(
    seen_ids: pa.Table | duckdb.DuckDBPyRelation | None, key: str
) -> pa.ChunkedArray | duckdb.DuckDBPyRelation | None:
    if seen_ids is None or isinstance(seen_ids, duckdb.DuckDBPyRelation):
        return seen_ids  # a relation: already the lookback's keys as VARCHAR `key` (judging.keys_of_files)
    if key not in seen_ids.column_names:
        raise ValueError(
            f"seen_ids must have a {key!r} column (the ids accepted in the lookback), got {seen_ids.column_names}"
        )
    return seen_ids.column(key).cast(pa.string())


def validate(
    raw: pa.Table | Path, source: str, ds: date, settings: Actionable, suite: Suite | None = None
) -> ValidationOutcome:
    """Run the source's suite on the landed partition (an Arrow table or its Parquet file; imports Great
    Expectations), with the map's domain rules (currencies, txn_types, event_types, zero_amounts) in place of the
    suite's."""
    suite = suite if suite is not None else with_kwargs(load_suite(suite_path(source)), settings.suite_changes(source))
    return validate_raw(
        raw, source, ds, max_clock_skew_minutes=settings.max_clock_skew_minutes, suite=suite, pii=settings.pii
    )


@dataclass(frozen=True)
class Inputs:
    """What one keyed cleaning reads besides its raw rows: the known users, the lookback's accepted keys, and where
    to write the accepted rows (None: return them as a table)."""

    known_users: pa.Table | duckdb.DuckDBPyRelation | None
    seen_ids: pa.Table | duckdb.DuckDBPyRelation | None
    accepted_to: Path | None = None


def _clean_keyed(
    con: duckdb.DuckDBPyConnection,
    raw: pa.Table | Path,
    inputs: Inputs,
    plan: Plan,
    key: str,
    ds: date,
    settings: Actionable,
    validation: ValidationOutcome | None,
    withhold: bool,
) -> CleanResult:
    validation = validation if validation is not None else validate(raw, plan.source, ds, settings)
    withheld = withheld_columns(validation) if withhold else []
    known = inputs.known_users
    known = known.select(["user_id"]) if isinstance(known, pa.Table) else known
    judged = judge(con, plan, raw, known, _seen_keys(inputs.seen_ids, key), validation)
    schema = SCHEMAS[plan.source]
    try:
        details = fate_details(con, judged)
        details["conflicting_copies"] = conflicting_copies(con, judged)
        streamed = inputs.accepted_to is not None  # `table` stays empty, `actionable_rows` counts the accepted
        result = CleanResult(
            table=schema.empty_table() if streamed else accepted_rows(con, judged, schema, withheld),
            quarantine=quarantine_rows(con, judged, plan.source),
            raw_rows=raw_row_count(raw),
            duplicates_removed=details["duplicates"],
            details=details,
            actionable_rows=details["accepted"] if streamed else None,
            validation=validation,
            withheld=withheld,
            written=inputs.accepted_to,
        ).assert_balanced(plan.source)
        if streamed:  # only a balanced result is written
            written = write_accepted_rows(con, judged, schema, inputs.accepted_to, withheld)
            if written != result.actionable_rows:  # pragma: no cover - the same rows, counted twice
                raise AccountingError(f"{plan.source}: {written} rows written, {result.actionable_rows} accepted")
    finally:
        drop_judged(con, judged)
    return result


# --- public API ------------------------------------------------------------------------------------


def clean_events(
    con: duckdb.DuckDBPyConnection,
    raw: pa.Table | Path,
    ds: date,
    known_users: pa.Table | duckdb.DuckDBPyRelation,
    seen_ids: pa.Table | duckdb.DuckDBPyRelation | None,
    settings: Actionable,
    *,
    validation: ValidationOutcome | None = None,
    withhold: bool = True,
    accepted_to: Path | None = None,
) -> CleanResult:
    """Typed events of landing day `ds`; refused rows quarantined with every reason; duplicates of
    event_id within the partition and of `seen_ids` (event ids accepted in the lookback) removed.
    `validation`: the suite's outcome on `raw` (run here when not given); `withhold=False` keeps
    columns a failed column expectation would withhold (for tests of the row rules only). `raw` may be the raw
    partition's Parquet file, `known_users` and `seen_ids` DuckDB relations (`judging.judge`); with
    `accepted_to` the accepted rows are written to that file as they are read out (`result.written`), not held."""
    plan = Plan("events", _event_typing(), event_checks(ds, settings), dedup_key="event_id")
    inputs = Inputs(known_users, seen_ids, accepted_to)
    return _clean_keyed(con, raw, inputs, plan, "event_id", ds, settings, validation, withhold)


def clean_transactions(
    con: duckdb.DuckDBPyConnection,
    raw: pa.Table | Path,
    ds: date,
    known_users: pa.Table | duckdb.DuckDBPyRelation,
    seen_ids: pa.Table | duckdb.DuckDBPyRelation | None,
    settings: Actionable,
    *,
    validation: ValidationOutcome | None = None,
    withhold: bool = True,
    accepted_to: Path | None = None,
) -> CleanResult:
    """Typed transactions of landing day `ds` (amount DOUBLE > 0, known currency and type; status
    kept as delivered); refused rows quarantined; duplicates of txn_id removed as for events."""
    plan = Plan("transactions", _transaction_typing(), transaction_checks(ds, settings), dedup_key="txn_id")
    inputs = Inputs(known_users, seen_ids, accepted_to)
    return _clean_keyed(con, raw, inputs, plan, "txn_id", ds, settings, validation, withhold)


def conformed(previous: pa.Table | None, schema: pa.Schema) -> pa.Table:
    """A previous partition in the table's schema (empty on the first day)."""
    return (previous if previous is not None else schema.empty_table()).select(schema.names).cast(schema)
