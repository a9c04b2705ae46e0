"""The typed batch: raw VARCHAR rows typed the one way both validation and the actionable layer use.

GX's pandas metrics compare values as they are typed, so a suite runs on a typed frame, not on the
raw text:

- text: trimmed, an empty string is null (a blank user_id is missing, as in the actionable layer);
- timestamps: ISO 8601 with an explicit offset, as the UTC instant (`datetime64[us, UTC]`); anything
  else is null, so one `not_be_null` finds both missing and unparseable values (`bad_timestamp`), and
  `be_between` with `max_value: {"$PARAMETER": "latest_valid_time"}` finds future ones (the bound is
  per batch: end of the landing day plus the clock skew, see `day_parameters`);
- amount: a finite float64 or null; birth_year: float64 when the text is 4 digits, and its text in
  `birth_year_text` (a non-number is caught by a regex on the text, a number out of range by
  `be_between` on the value); consent flags: lower-cased text (`true`/`false`, anything else stays
  visible to `be_in_set`).

Only the columns a suite uses are typed and handed to GX (no PII column of the profiles). A raw row
that did not parse (`_raw_text` set) has every canonical column NULL, so every row expectation refuses
it: the caller gives such a row its one reason, `unparseable_row`, as the actionable layer does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from assets.lake import connect, readable

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

DERIVED_SUFFIXES = ("_text", "_is_json")

# An ISO 8601 date-time with an explicit UTC offset (the actionable layer's rule); DuckDB's cast then
# gives the instant.
ISO_WITH_OFFSET = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)"

# How each raw (VARCHAR) column is typed for validation. The output has the canonical name; a year
# also gives `<column>_text` (its trimmed text) and JSON text `<column>_is_json` (DuckDB's json_valid:
# GX's own expect_column_values_to_be_json_parseable calls json.loads per value, ~10 s per million).
_TEXT, _TIMESTAMP, _AMOUNT, _YEAR, _FLAG, _JSON = "text", "timestamp", "amount", "year", "flag", "json"
TYPING: dict[str, dict[str, str]] = {
    "events": {
        "event_id": _TEXT,
        "user_id": _TEXT,
        "event_type": _TEXT,
        "occurred_at": _TIMESTAMP,
        "session_id": _TEXT,
        "channel": _TEXT,
        "campaign_id": _TEXT,
        "touchpoint_id": _TEXT,
        "properties": _JSON,
    },
    "transactions": {
        "txn_id": _TEXT,
        "user_id": _TEXT,
        "occurred_at": _TIMESTAMP,
        "amount": _AMOUNT,
        "currency": _TEXT,
        "txn_type": _TEXT,
        "merchant_category": _TEXT,
        "status": _TEXT,
    },
    "profiles": {
        "user_id": _TEXT,
        "updated_at": _TIMESTAMP,
        "signup_at": _TIMESTAMP,
        "country": _TEXT,
        "birth_year": _YEAR,
        "plan": _TEXT,
        "consent_personalization": _FLAG,
        "consent_marketing": _FLAG,
    },
}


def typed_frame(raw: pa.Table | pd.DataFrame | Path, source: str, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """The raw VARCHAR rows of `source` typed for validation (see the module doc), one row per raw row
    in the same order, with a RangeIndex: positions in the frame are positions in `raw`.

    `raw` may be a raw partition's Parquet file, read by DuckDB (only the columns typed are read).
    `columns` limits the output to those columns (e.g. `suite.columns`); by default every typed
    column of the source. Typing runs in DuckDB (one pass, vectorized) and hands Arrow to pandas.
    """
    if source not in TYPING:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(TYPING)}")
    outputs = _typing_sql(source)
    wanted = list(outputs) if columns is None else list(dict.fromkeys(columns))
    unknown = [c for c in wanted if c not in outputs]
    if unknown:
        raise ValueError(f"{source}: no typed column {', '.join(unknown)}; typed columns: {', '.join(outputs)}")
    needed_raw = sorted({_raw_name(c) for c in wanted})
    raw_columns = raw_column_names(raw)
    missing = [c for c in needed_raw if c not in raw_columns]
    if missing:
        raise ValueError(f"{source}: the raw batch lacks {', '.join(missing)}")
    con = connect()  # UTC, a cursor on the shared workspace
    try:
        if is_parquet_file(raw):
            con.register("_raw_batch", con.sql("SELECT * FROM read_parquet(?)", params=[str(raw)]))
        else:
            con.register("_raw_batch", raw)
        select = ", ".join(f'{outputs[c]} AS "{c}"' for c in wanted) or "1 AS _none"
        table = con.sql(f"SELECT {select} FROM _raw_batch").to_arrow_table()  # a projection keeps the order
    finally:
        con.close()
    return to_pandas(table.select(wanted))


def is_parquet_file(raw: object) -> bool:
    """Whether a batch is a Parquet file's path (local, or a `upath.UPath` on an object store)."""
    return isinstance(raw, Path) or type(raw).__module__.split(".")[0] == "upath"


def raw_column_names(raw: pa.Table | pd.DataFrame | Path) -> list[str]:
    """The columns of a raw batch (an Arrow table, a frame, or a Parquet file, from its footer)."""
    if is_parquet_file(raw):
        return pq.ParquetFile(readable(raw)).schema_arrow.names
    return list(raw.column_names if isinstance(raw, pa.Table) else raw.columns)


def raw_row_count(raw: pa.Table | Path) -> int:
    """The rows of a raw batch (a Parquet file: from its footer)."""
    return pq.ParquetFile(readable(raw)).metadata.num_rows if is_parquet_file(raw) else raw.num_rows


def _raw_name(column: str) -> str:
    for suffix in DERIVED_SUFFIXES:
        if column.endswith(suffix):
            return column[: -len(suffix)]
    return column


def text_sql(expr: str) -> str:
    """Trimmed text, an empty string NULL."""
    return f"nullif(trim({expr}), '')"


def timestamp_sql(expr: str) -> str:
    """ISO 8601 with an explicit offset as the UTC instant (TIMESTAMPTZ); anything else NULL."""
    return (
        f"CASE WHEN regexp_full_match(trim({expr}), '{ISO_WITH_OFFSET}') THEN try_cast(trim({expr}) AS TIMESTAMPTZ) END"
    )


def amount_sql(expr: str) -> str:
    """A finite DOUBLE, else NULL (NaN and infinity included)."""
    number = f"try_cast(trim({expr}) AS DOUBLE)"
    return f"CASE WHEN isfinite({number}) THEN {number} END"


def year_sql(expr: str) -> str:
    """The year as DOUBLE when the trimmed text is 4 digits, else NULL (the range is a row rule)."""
    return f"CASE WHEN regexp_full_match({text_sql(expr)}, '\\d{{4}}') THEN CAST({text_sql(expr)} AS DOUBLE) END"


def flag_sql(expr: str) -> str:
    """Lower-cased trimmed text (`true`/`false` expected; anything else stays visible)."""
    return f"lower({text_sql(expr)})"


def column_sql(source: str, expr_of: Callable[[str], str]) -> dict[str, str]:
    """The one typing of a source: output column -> SQL, where `expr_of(column)` is the SQL of the raw
    VARCHAR of a canonical column. Used for validation (`typed_frame`) and by the actionable layer,
    which builds its stored types (INTEGER year, BOOLEAN consent) on these values."""
    out: dict[str, str] = {}
    for column, kind in TYPING[source].items():
        raw = expr_of(column)
        if kind == _TEXT:
            out[column] = text_sql(raw)
        elif kind == _JSON:
            out[column] = raw  # as landed
            is_json = f"coalesce(json_valid({raw}), false)"
            out[f"{column}_is_json"] = f"CASE WHEN {text_sql(raw)} IS NOT NULL THEN {is_json} END"
        elif kind == _FLAG:
            out[column] = flag_sql(raw)
        elif kind == _TIMESTAMP:
            out[column] = timestamp_sql(raw)
        elif kind == _AMOUNT:
            out[column] = amount_sql(raw)
        elif kind == _YEAR:
            out[column] = year_sql(raw)
            out[f"{column}_text"] = text_sql(raw)
        else:  # pragma: no cover - TYPING is static
            raise AssertionError(kind)
    return out


def _typing_sql(source: str) -> dict[str, str]:
    return column_sql(source, lambda column: f'CAST("{column}" AS VARCHAR)')


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas with the dtypes GX's pandas metrics handle vectorized (float64, int64,
    datetime64[.., UTC], strings); a RangeIndex."""
    return table.to_pandas()  # a RangeIndex


def day_parameters(ds: date, max_clock_skew_minutes: int = 5) -> dict[str, Any]:
    """The `$PARAMETER` values of a landing day: `latest_valid_time` (the end of `ds` UTC plus the
    clock skew, ISO 8601) and `current_year` (the year of `ds`)."""
    midnight = datetime.combine(ds + timedelta(days=1), time(0), tzinfo=UTC)
    end = midnight + timedelta(minutes=max_clock_skew_minutes)
    return {"latest_valid_time": end.isoformat(), "current_year": ds.year}


def base_column(column: str | None) -> str | None:
    """The canonical column a validated column stands for (`properties_is_json` -> `properties`)."""
    return None if column is None else _raw_name(column)
