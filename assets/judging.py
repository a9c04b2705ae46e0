"""The cleaning machinery of the actionable layer (the rules are in assets/actionable.py): every raw row judged,
typed, with its reasons and its fate (`accepted`, `quarantined`, `duplicate`), then read out as the accepted
rows, the quarantine and the counts per fate and reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets.contract import CANONICAL_COLUMNS, QUARANTINE_SCHEMA
from assets.lake import atomic_path
from assets.quality.outcome import ValidationOutcome
from assets.quality.typed_batch import is_parquet_file, raw_column_names, raw_row_count
from assets.user_index import USER_COLUMN, bloom_options_for

ROW_GROUP_ROWS = 1024 * 1024  # pyarrow's `write_table` default: the row groups of a table written whole
READ_BATCH_ROWS = 128 * 1024  # what one read of the accepted rows brings: a row group is held, hardly more


@dataclass(frozen=True)
class RowCheck:
    """One declared rule: rows for which `fails` (SQL over the typed row) is TRUE are refused with `reason`."""

    reason: str
    fails: str
    description: str


UNPARSEABLE = RowCheck("unparseable_row", "_raw_text IS NOT NULL", "the landed line or CSV row did not parse")


def sql_literal(value: str) -> str:
    """`value` as a SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(frozen=True)
class Plan:
    """How to judge one source's rows: its typing (column -> SQL), declared checks, duplicate key and PII."""

    source: str
    typing: dict[str, str]
    checks: list[RowCheck]
    dedup_key: str  # SQL over the typed row: the duplicate key (NULL: never a duplicate)
    pii: tuple[str, ...] = ()


def _reasons_sql(checks: list[RowCheck]) -> str:
    """Every reason of a row: the suite's (`_suite_reasons`, from GX) then the declared checks'."""
    others = ", ".join(
        f"CASE WHEN coalesce(({c.fails}), false) THEN {sql_literal(c.reason)} END"
        for c in checks
        if c is not UNPARSEABLE
    )
    return (
        f"CASE WHEN _raw_text IS NOT NULL THEN ['unparseable_row'] "
        f"ELSE list_concat(coalesce(_suite_reasons, []::VARCHAR[]), "
        f"list_filter([{others}]::VARCHAR[], lambda r: r IS NOT NULL)) END"
    )


def _payload_sql(raw_columns: list[str], pii: tuple[str, ...]) -> str:
    """The raw row as JSON text. PII columns are left out, and so is the raw text of an unparseable
    row of a source that has PII (it may hold some): the raw layer keeps both, at _source_file/_line."""
    pairs = [(c, f"raw_{c}") for c in raw_columns if c not in pii]
    if not pii:
        pairs.append(("_raw_text", "_raw_text"))
    return "to_json({" + ", ".join(f"{sql_literal(key)}: {value}" for key, value in pairs) + "})::VARCHAR"


def _landed(raw: pa.Table) -> pa.Table:
    """The raw table with `_raw_text` (older partitions may lack it) and `_row`, its position."""
    if "_raw_text" not in raw.column_names:
        raw = raw.append_column("_raw_text", pa.nulls(raw.num_rows, pa.string()))
    return raw.append_column("_row", pa.array(np.arange(raw.num_rows, dtype=np.int64)))


def _landed_file(con: duckdb.DuckDBPyConnection, raw: Path) -> duckdb.DuckDBPyRelation:
    """A raw partition's Parquet file as `_landed` gives a table, read by DuckDB: `_row` is the row's position."""
    raw_text = "" if "_raw_text" in raw_column_names(raw) else ", NULL::VARCHAR AS _raw_text"
    return con.sql(
        f"SELECT * EXCLUDE (file_row_number){raw_text}, file_row_number AS _row "
        "FROM read_parquet(?, file_row_number = true)",
        params=[str(raw)],
    )


def keys_of_files(con: duckdb.DuckDBPyConnection, files: list[str], column: str) -> duckdb.DuckDBPyRelation:
    """The values of `column` in Parquet files as VARCHAR `key` (the lookback's accepted keys), read by DuckDB."""
    if not files:
        return con.sql("SELECT NULL::VARCHAR AS key WHERE false")
    return con.sql(
        f'SELECT CAST("{column}" AS VARCHAR) AS key FROM read_parquet(?, union_by_name = true)', params=[files]
    )


def judge(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    raw: pa.Table | Path,
    known_users: pa.Table | duckdb.DuckDBPyRelation | None,
    seen_keys: pa.Array | duckdb.DuckDBPyRelation | None,
    validation: ValidationOutcome | None = None,
) -> str:
    """Judge every raw row: typed, with its reasons and its fate (`accepted`, `quarantined`,
    `duplicate`). Returns the name of a temporary view over the materialized result (drop it with
    `_drop`). The copies of a key are resolved in a small grouped table rather than a window over the
    wide rows, which are written once (this is what keeps 1M events at about two seconds).

    `raw` may be the raw partition's Parquet file, `known_users` and `seen_keys` DuckDB relations (a
    `user_id` column; a `key` column, `keys_of_files`): DuckDB then reads them itself, within its memory
    limit, and Python never holds the day's rows."""
    raw_columns = CANONICAL_COLUMNS[plan.source]
    name = f"_judged_{uuid.uuid4().hex}"
    raw_name, known_name, seen_name = f"{name}_raw", f"{name}_known", f"{name}_lookback"
    suite_name = f"{name}_suite"
    raw_rows = raw_row_count(raw)
    if validation is not None and validation.row_count != raw_rows:
        raise ValueError(
            f"{plan.source}: the validation outcome has {validation.row_count} rows, the raw partition {raw_rows}"
        )
    failing = validation.failing_rows() if validation is not None else quality_empty_failures()
    con.register(suite_name, failing)
    con.register(raw_name, _landed_file(con, raw) if is_parquet_file(raw) else _landed(raw))
    con.register(
        known_name, known_users if known_users is not None else pa.table({"user_id": pa.array([], pa.string())})
    )
    if not isinstance(seen_keys, duckdb.DuckDBPyRelation):
        seen_keys = pa.table({"key": seen_keys if seen_keys is not None else pa.array([], pa.string())})
    con.register(seen_name, seen_keys)
    renamed = ", ".join(f'"{c}" AS raw_{c}' for c in raw_columns)
    typed = ", ".join(f"{expr} AS {col}" for col, expr in plan.typing.items())
    raw_values = ", ".join(f"raw_{c}" for c in raw_columns)
    try:
        con.execute(f"""
            CREATE TEMP TABLE {name}_rows AS
            WITH typed AS (
                SELECT *, {typed}
                FROM (SELECT {renamed}, _source_file, _source_line, _raw_text, r._row, s.reasons AS _suite_reasons
                      FROM {raw_name} AS r LEFT JOIN {suite_name} AS s ON s._row = r._row)
            ), judged AS (
                SELECT *, {_reasons_sql(plan.checks)} AS reasons, ({plan.dedup_key}) AS _dedup_key
                FROM (SELECT *, user_id IN (SELECT user_id FROM {known_name}) AS _known_user FROM typed)
            )
            SELECT _row, CASE WHEN len(reasons) > 0 THEN _source_file END AS _source_file,  -- the quarantine's only
                   _source_line, {", ".join(plan.typing)}, reasons, _dedup_key,
                   CASE WHEN len(reasons) > 0 THEN {_payload_sql(raw_columns, plan.pii)} END AS payload,
                   hash({raw_values}, _raw_text) AS _content_hash
            FROM judged
        """)
        con.execute(f"""
            CREATE TEMP TABLE {name}_seen AS  -- the partition's keys among the (larger) lookback's
            SELECT DISTINCT key AS _dedup_key, true AS _seen FROM {seen_name}
            WHERE key IN (SELECT _dedup_key FROM {name}_rows)
        """)
        con.execute(f"""
            CREATE TEMP TABLE {name}_copies AS
            SELECT _dedup_key, arg_min(_row, (len(reasons), _row)) AS _kept_row, count(*) AS copies,
                   count(DISTINCT _content_hash) AS versions
            FROM {name}_rows WHERE _dedup_key IS NOT NULL AND _dedup_key NOT IN (SELECT _dedup_key FROM {name}_seen)
            GROUP BY _dedup_key HAVING count(*) > 1
        """)
        con.execute(f"""
            CREATE TEMP VIEW {name} AS
            SELECT r.*, coalesce(s._seen, false) AS _seen, c.versions,
                   CASE WHEN r._dedup_key IS NOT NULL AND (s._seen IS NOT NULL OR r._row <> coalesce(c._kept_row, r._row))
                        THEN 'duplicate'
                        WHEN len(r.reasons) > 0 THEN 'quarantined'
                        ELSE 'accepted' END AS fate
            FROM {name}_rows AS r
            LEFT JOIN {name}_seen AS s USING (_dedup_key)
            LEFT JOIN {name}_copies AS c USING (_dedup_key)
        """)  # noqa: E501
    except Exception:
        drop_judged(con, name)
        raise
    finally:
        for registered in (raw_name, known_name, seen_name, suite_name):
            con.unregister(registered)
    return name


def quality_empty_failures() -> pa.Table:
    return pa.table({"_row": pa.array([], pa.int64()), "reasons": pa.array([], pa.list_(pa.string()))})


def accepted_rows(con: duckdb.DuckDBPyConnection, judged: str, schema: pa.Schema, withheld: list[str] = ()) -> pa.Table:
    """The accepted rows in the order they landed (file, line); `withheld` columns are NULL."""
    return _accepted(con, judged, schema, withheld).to_arrow_table().cast(schema)


def _accepted(
    con: duckdb.DuckDBPyConnection, judged: str, schema: pa.Schema, withheld: list[str]
) -> duckdb.DuckDBPyRelation:
    columns = ", ".join(f"NULL AS {c}" if c in withheld else c for c in schema.names)
    return con.sql(f"SELECT {columns} FROM {judged} WHERE fate = 'accepted' ORDER BY _row")


def write_accepted_rows(
    con: duckdb.DuckDBPyConnection, judged: str, schema: pa.Schema, path: Path, withheld: list[str] = ()
) -> int:
    """Write the accepted rows (as `accepted_rows` gives them) to the Parquet file `path`, atomically, a row group
    at a time: the file `write_parquet_atomic` writes of the whole table (row groups of `ROW_GROUP_ROWS`, zstd,
    the Bloom filter on user_id), without the table ever being held. Returns the rows written."""
    ids = "0" if USER_COLUMN in withheld or USER_COLUMN not in schema.names else f"count(DISTINCT {USER_COLUMN})"
    rows, distinct_ids = con.sql(f"SELECT count(*), {ids} FROM {judged} WHERE fate = 'accepted'").fetchall()[0]
    with atomic_path(path) as tmp:
        if rows == 0:
            pq.write_table(schema.empty_table(), tmp, compression="zstd", bloom_filter_options=None)
            return 0
        bloom = bloom_options_for(int(distinct_ids)) if USER_COLUMN in schema.names else None
        reader = _accepted(con, judged, schema, withheld).to_arrow_reader(READ_BATCH_ROWS)
        with pq.ParquetWriter(tmp, schema, compression="zstd", bloom_filter_options=bloom) as writer:
            for group in _row_groups(reader, schema):
                writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
    return rows


def _row_groups(reader: pa.RecordBatchReader, schema: pa.Schema) -> Iterator[pa.Table]:
    """The reader's rows as tables of exactly `ROW_GROUP_ROWS` rows (the last one shorter), in `schema`."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in reader:
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= ROW_GROUP_ROWS:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, ROW_GROUP_ROWS).cast(schema)
            rest = table.slice(ROW_GROUP_ROWS)
            pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        yield pa.Table.from_batches(pending).cast(schema)


def quarantine_rows(con: duckdb.DuckDBPyConnection, judged: str, source: str) -> pa.Table:
    return (
        con.sql(f"""
        SELECT {sql_literal(source)} AS source, _source_file, _source_line, payload, reasons
        FROM {judged} WHERE fate = 'quarantined' ORDER BY _row
    """)
        .to_arrow_table()
        .cast(QUARANTINE_SCHEMA)
    )


def fate_details(con: duckdb.DuckDBPyConnection, judged: str) -> dict:
    fates = dict(con.sql(f"SELECT fate, count(*) FROM {judged} GROUP BY fate").fetchall())
    reasons = dict(
        con.sql(f"""
        SELECT reason, count(*) FROM (SELECT unnest(reasons) AS reason FROM {judged} WHERE fate = 'quarantined')
        GROUP BY reason ORDER BY reason
    """).fetchall()
    )
    duplicates = dict(
        con.sql(f"""
        SELECT CASE WHEN _seen THEN 'duplicates_of_lookback' ELSE 'duplicates_within_partition' END, count(*)
        FROM {judged} WHERE fate = 'duplicate' GROUP BY 1
    """).fetchall()
    )
    return {
        "accepted": int(fates.get("accepted", 0)),
        "quarantined": int(fates.get("quarantined", 0)),
        "duplicates": int(fates.get("duplicate", 0)),
        "quarantined_by_reason": {k: int(v) for k, v in reasons.items()},
        "duplicates_of_lookback": int(duplicates.get("duplicates_of_lookback", 0)),
        "duplicates_within_partition": int(duplicates.get("duplicates_within_partition", 0)),
    }


def conflicting_copies(con: duckdb.DuckDBPyConnection, judged: str) -> int:
    """Keys delivered more than once in the partition with differing contents (one copy was kept)."""
    return int(con.sql(f"SELECT count(*) FROM {judged}_copies WHERE versions > 1").fetchall()[0][0])


def drop_judged(con: duckdb.DuckDBPyConnection, judged: str) -> None:
    con.execute(f"DROP VIEW IF EXISTS {judged}")
    for table in ("copies", "seen", "rows"):
        con.execute(f"DROP TABLE IF EXISTS {judged}_{table}")
