"""Raw layer: one landing day of one source, landed as it came, mapped onto the canonical columns.

`land` reads every landing file of the day and returns one row per record, every canonical column
as VARCHAR (docs/contracts.md), plus where the row came from:

- `_source_file`: the file's path relative to the data root;
- `_source_line`: 1-based line of a JSONL file, 1-based data row of a CSV file (header excluded), 1-based
  row of a Parquet file;
- `_raw_text`: NULL for a record that parsed; for one that did not (a JSONL line that is not a JSON
  object, a CSV row with the wrong number of fields, bad encoding or an unterminated quote) the raw
  text, with every canonical column NULL. Such rows are kept, never dropped: the actionable layer
  quarantines them as `unparseable_row`.

Each reader returns the source's own columns as text; `assets/source_mapping.py` maps them onto the
canonical ones (renames, expressions, constants, naive timestamps in the declared zone, generated keys).
Nothing is filtered here. Blank JSONL lines are not records and are skipped (line numbers still count
them). Source columns the mapping does not read are not landed. A CSV header or Parquet schema that
lacks a required column (or one an expression reads), or a file that cannot be read, raises
`LandingError` naming the file and what was expected; an optional column it lacks lands as NULL and is
reported by `absent_columns`.

JSONL files (gzip-compressed if the map says so) are split into lines with numpy (exact line numbers,
any line length) and parsed by DuckDB in one pass per line (`json_extract_string` with a list of
paths). CSV files are read by DuckDB's reader with the declared dialect and explicit columns; refused
rows come from its rejects table. Parquet files are read by DuckDB, values rendered as text.

The landing files of a day and the manifest beside each raw partition are found and written by
`assets/landing.py`.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import TextIO

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets.contract import CANONICAL_COLUMNS
from assets.lake import Lake, is_local, readable
from assets.landing import LandingError, landing_files, relative_path
from assets.pyramid_map import Source
from assets.source_mapping import (
    canonical_to_source,
    column_problems,
    is_renaming_only,
    iso_sql,
    mapped_sql,
    read_columns,
)
from assets.sql_guard import expression_columns

LINEAGE_COLUMNS = ["_source_file", "_source_line", "_raw_text"]
UTF8_BOM = b"\xef\xbb\xbf"


def raw_schema(source_name: str) -> pa.Schema:
    """The schema of `raw/<source>`: canonical columns as VARCHAR, then the lineage columns."""
    lineage = {"_source_file": pa.string(), "_source_line": pa.int64(), "_raw_text": pa.string()}
    return pa.schema(
        [(c, pa.string()) for c in CANONICAL_COLUMNS[source_name]] + [(c, lineage[c]) for c in LINEAGE_COLUMNS]
    )


def land(
    con: duckdb.DuckDBPyConnection, lake: Lake, source: Source, ds: date, files: list[Path] | None = None
) -> pa.Table:
    """Every record of the source's landing files for `ds` (or of `files`), as VARCHAR, with its file and line."""
    schema = raw_schema(source.name)
    paths = landing_files(lake, source, ds) if files is None else files
    tables = [land_file(con, path, lake, source).cast(schema) for path in paths]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def land_file(con: duckdb.DuckDBPyConnection, path: Path, lake: Lake, source: Source) -> pa.Table:
    """One landing file's records mapped onto the canonical columns (assets/source_mapping.py)."""
    rows, present = _READERS[source.format](con, path, source)
    if is_renaming_only(source):
        return _renamed(rows, source, present, relative_path(path, lake))
    canonical = ", ".join(f'"{c}"' for c in CANONICAL_COLUMNS[source.name])
    con.register("_landing_rows", rows)
    try:
        return con.sql(
            f"SELECT {canonical}, $file AS _source_file, _source_line, _raw_text "
            f"FROM ({mapped_sql(source, '_landing_rows', present)})",  # a projection keeps the file's order
            params={"file": relative_path(path, lake)},
        ).to_arrow_table()
    finally:
        con.unregister("_landing_rows")


def _renamed(rows: pa.Table, source: Source, present: set[str], relative: str) -> pa.Table:
    """The mapping of a source that only renames, without a query: a record that did not parse has every
    source column NULL already (the readers' contract)."""
    to_source = canonical_to_source(source)
    columns = {
        c: rows.column(to_source[c]) if to_source[c] in present else pa.nulls(rows.num_rows, pa.string())
        for c in CANONICAL_COLUMNS[source.name]
    }
    files = pa.array([relative], pa.string()).take(np.zeros(rows.num_rows, dtype=np.int64))
    lineage = {"_source_file": files, "_source_line": rows["_source_line"], "_raw_text": rows["_raw_text"]}
    return pa.table({**columns, **lineage})


def absent_columns(source: Source, files: Iterable[Path]) -> list[str]:
    """The optional canonical columns that a CSV or Parquet file of `files` lacks (landed as NULL), in the
    contract's order; none for JSON lines, whose records may each lack a key."""
    if source.format == "jsonl":
        return []
    absent: set[str] = set()
    for path in files:
        found = _csv_columns(path, source) if source.format == "csv" else _parquet_columns(path)
        absent.update(column_problems(source, found)[1])
    return [c for c in CANONICAL_COLUMNS[source.name] if c in absent]


def check_file_columns(con: duckdb.DuckDBPyConnection, path: Path, source: Source) -> list[str]:
    """Raise LandingError when the file lacks a column the mapping needs (for JSON lines: a key no record
    has); else the optional canonical columns it lacks (`pyramid check` looks at each input this way)."""
    if source.format == "jsonl":
        found, what = _jsonl_file_keys(con, path, source), "no JSON record has"
    elif source.format == "csv":
        found, what = _csv_columns(path, source), "CSV header lacks"
    else:
        found, what = _parquet_columns(path), "Parquet schema lacks"
    _missing_columns(path, source, found, what)
    return column_problems(source, found)[1]


def _jsonl_file_keys(con: duckdb.DuckDBPyConnection, path: Path, source: Source) -> list[str]:
    """Every key of the file's JSON objects, in name order."""
    try:
        return [
            key
            for (key,) in con.sql(
                "SELECT DISTINCT unnest(json_keys(json)) AS k FROM read_json_objects(?, format = 'newline_delimited', "
                "ignore_errors = true, compression = ?) WHERE json_type(json) = 'OBJECT' ORDER BY k",
                params=[str(path), source.compression],
            ).fetchall()
        ]
    except duckdb.Error as err:
        raise LandingError(f"{path}: cannot be read as JSON lines ({err})") from err


def unexpected_columns(names: Iterable[str], source: Source) -> list[str]:
    """The column names (a CSV header, JSON keys) that the source's mapping does not read, in order."""
    known = set(read_columns(source))
    return [name for name in dict.fromkeys(names) if name not in known]


def renamed_hint(unexpected: list[str], delimiter: str = ",") -> str:
    """What a missing column beside unknown ones suggests: a rename upstream, or one unsplit header."""
    if len(unexpected) == 1 and any(mark in unexpected[0] for mark in ";\t|," if mark != delimiter):
        return f"; found one column {unexpected[0][:80]!r}: a wrong delimiter? (expected {delimiter!r})"
    if not unexpected:
        return ""
    shown = ", ".join(repr(name[:40]) for name in unexpected[:5]) + (", ..." if len(unexpected) > 5 else "")
    return (
        f"; unexpected: {shown} (renamed upstream? map the source's name to the canonical one under "
        "`columns` of the source in pyramid.yaml, or ask the sender for the contract's names)"
    )


def _missing_columns(path: Path, source: Source, found: list[str], what: str) -> None:
    """Raise LandingError when the file lacks a column the mapping needs (a required or an expression's one)."""
    missing = column_problems(source, found)[0]
    if missing:
        raise LandingError(
            f"{path}: {what} {', '.join(missing)}; expected columns for source {source.name!r}: "
            f"{', '.join(read_columns(source))}; found: {', '.join(found)}"
            f"{renamed_hint(unexpected_columns(found, source), source.csv.delimiter)}"
        )


def _read_bytes(path: Path, source: Source) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise LandingError(f"{path}: cannot be read ({err.strerror or err})") from err
    if source.compression != "gzip":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:
        raise LandingError(f"{path}: cannot be decompressed as gzip, as the map declares ({err})") from err


# --- JSONL -----------------------------------------------------------------------------------------


def _split_lines(con: duckdb.DuckDBPyConnection, data: bytes) -> pa.Table:
    """The file's lines (newline kept: JSON ignores it), their 1-based numbers, and for a line that is
    not valid UTF-8 its bytes escaped as text (`\\xFF`) in `undecodable`."""
    if data.startswith(UTF8_BOM):
        data = b" " * len(UTF8_BOM) + data[len(UTF8_BOM) :]  # whitespace to JSON; offsets unchanged
    buffer = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buffer == ord("\n")) + 1
    if len(data) and (not len(ends) or ends[-1] != len(data)):
        ends = np.append(ends, len(data))  # last line without a trailing newline
    offsets = pa.py_buffer(np.concatenate([[0], ends]).astype(np.int64))
    lines = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(ends), [None, offsets, pa.py_buffer(data)])
    numbers = pa.array(np.arange(1, len(ends) + 1, dtype=np.int64))
    try:
        text = lines.cast(pa.large_string())  # validates UTF-8 without copying
    except pa.ArrowInvalid:
        return _split_undecodable(con, lines, numbers)
    return pa.table({"_source_line": numbers, "text": text, "undecodable": pa.nulls(len(ends), pa.string())})


def _split_undecodable(con: duckdb.DuckDBPyConnection, lines: pa.Array, numbers: pa.Array) -> pa.Table:
    """The slower path for a file with invalid UTF-8: DuckDB decodes line by line."""
    con.register("_landing_binary_lines", pa.table({"_source_line": numbers, "line": lines}))
    try:
        return con.sql(r"""
            SELECT _source_line, try(decode(line)) AS text,
                   CASE WHEN text IS NULL THEN regexp_replace(line::VARCHAR, '(\\x0D)?\\x0A$', '') END AS undecodable
            FROM _landing_binary_lines
        """).to_arrow_table()
    finally:
        con.unregister("_landing_binary_lines")


def _read_jsonl(con: duckdb.DuckDBPyConnection, path: Path, source: Source) -> tuple[pa.Table, set[str]]:
    """The source columns of each non-blank line (NULL for a key the record lacks) and the line's raw text
    when it is not a JSON object."""
    names = read_columns(source)
    json_paths = ", ".join(_json_path_literal(name) for name in names)
    picks = ", ".join(f'v[{i + 1}] AS "{name}"' for i, name in enumerate(names))
    con.register("_landing_lines", _split_lines(con, _read_bytes(path, source)))
    try:
        rows = con.sql(
            f"""
            SELECT {picks}, _source_line,
                   CASE WHEN v IS NULL THEN coalesce(undecodable, rtrim(text, chr(13) || chr(10))) END AS _raw_text
            FROM (
                SELECT _source_line, text, undecodable,
                       CASE WHEN json_type(json_text) = 'OBJECT' THEN json_extract_string(json_text, [{json_paths}]) END AS v
                FROM (SELECT *, CASE WHEN json_valid(text) THEN text END AS json_text FROM _landing_lines)
            )
            WHERE v IS NOT NULL OR undecodable IS NOT NULL OR trim(text, ' ' || chr(9) || chr(13) || chr(10)) <> ''
        """  # noqa: E501
        ).to_arrow_table()  # a projection keeps the file's order
        _expression_keys(con, path, source, rows)
    finally:
        con.unregister("_landing_lines")
    return rows, set(names)


def _expression_keys(con: duckdb.DuckDBPyConnection, path: Path, source: Source, rows: pa.Table) -> None:
    """Raise LandingError when a column an expression reads is no key of any record of the file."""
    read = [c for text in source.expressions.values() for c in expression_columns(text)]
    parsed = rows.column("_raw_text").null_count  # a parsed record keeps no raw text
    if not read or parsed == 0 or all(rows.column(c).null_count < rows.num_rows for c in read):
        return
    objects = "SELECT text FROM _landing_lines WHERE json_valid(text) AND json_type(text) = 'OBJECT'"
    keys = [k for (k,) in con.sql(f"SELECT DISTINCT unnest(json_keys(text)) FROM ({objects}) ORDER BY 1").fetchall()]
    _missing_columns(path, source, keys, "no JSON record has")


def _json_path_literal(key: str) -> str:
    escaped = key.replace("\\", "\\\\").replace('"', '\\"').replace("'", "''")
    return f"'$.\"{escaped}\"'"


# --- CSV -------------------------------------------------------------------------------------------


def _csv_columns(path: Path, source: Source) -> list[str]:
    """The file's header, or the map's `names` for a CSV without one."""
    if not source.csv.header:
        return list(source.csv.names)
    try:
        with _open_text(path, source) as handle:
            header = next(csv.reader(handle, delimiter=source.csv.delimiter, quotechar=source.csv.quote), None)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as err:
        raise LandingError(f"{path}: cannot read the CSV header ({err})") from err
    if not header:
        raise LandingError(f"{path}: empty file; expected a CSV header line")
    return [name.strip() for name in header]


def _open_text(path: Path, source: Source) -> TextIO:
    """The file as text (gzip-decompressed when the map says so), on a local disk or an object store."""
    if source.compression == "gzip":
        return gzip.open(readable(path), "rt", newline="", encoding="utf-8-sig")
    if is_local(path):
        return open(path, newline="", encoding="utf-8-sig")
    return io.TextIOWrapper(path.open("rb"), newline="", encoding="utf-8-sig")


def _read_csv(con: duckdb.DuckDBPyConnection, path: Path, source: Source) -> tuple[pa.Table, set[str]]:
    """The source columns of each row that parsed, and the raw text of each refused row, in file order."""
    header = _csv_columns(path, source)
    _missing_columns(path, source, header, "CSV header lacks")
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise LandingError(f"{path}: CSV header repeats {', '.join(duplicated)}; each column must appear once")
    good, rejected = _read_csv_rows(con, path, header, source)
    present = [name for name in read_columns(source) if name in header]
    good_numbers = _good_row_numbers(path, good.num_rows, rejected.column("_source_line").to_numpy())
    con.register("_landing_good", good.append_column("_source_line", pa.array(good_numbers, pa.int64())))
    con.register("_landing_rejected", rejected)
    try:
        good_cols = "".join(f'"{name}", ' for name in present)
        null_cols = "".join(f'NULL::VARCHAR AS "{name}", ' for name in present)
        rows = con.sql(f"""
            SELECT {good_cols}_source_line, NULL::VARCHAR AS _raw_text FROM _landing_good
            UNION ALL
            SELECT {null_cols}_source_line, _raw_text FROM _landing_rejected
            ORDER BY _source_line
        """).to_arrow_table()
    finally:
        con.unregister("_landing_good")
        con.unregister("_landing_rejected")
    return rows, set(present)


def _read_csv_rows(
    con: duckdb.DuckDBPyConnection, path: Path, header: list[str], source: Source
) -> tuple[pa.Table, pa.Table]:
    """The rows that parsed (file order) and the refused ones (data row number, raw text)."""
    columns = "{" + ", ".join(f"'{name.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for name in header) + "}"
    dialect = source.csv
    offset = 1 if dialect.header else 0  # the rejects table numbers file lines; data rows exclude the header
    try:
        good = con.sql(
            f"""
            SELECT * FROM read_csv(?, columns = {columns}, header = {str(dialect.header).lower()}, delim = ?,
                                   quote = ?, escape = ?, compression = ?, auto_detect = false,
                                   ignore_errors = true, store_rejects = true, rejects_table = '_landing_rejects',
                                   rejects_scan = '_landing_scans')
        """,
            params=[str(path), dialect.delimiter, dialect.quote, dialect.quote, source.compression],
        ).to_arrow_table()
        rejected = con.sql(f"""
            SELECT (line - {offset})::BIGINT AS _source_line, trim(any_value(csv_line), chr(10) || chr(13)) AS _raw_text
            FROM _landing_rejects GROUP BY line ORDER BY line
        """).to_arrow_table()
    except duckdb.Error as err:
        raise LandingError(f"{path}: cannot be read as CSV with header {','.join(header)} ({err})") from err
    finally:
        con.execute("DROP TABLE IF EXISTS _landing_rejects; DROP TABLE IF EXISTS _landing_scans")
    return good, rejected


def _good_row_numbers(path: Path, good_rows: int, rejected: np.ndarray) -> np.ndarray:
    """Data row numbers of the parsed rows: 1..N in file order, skipping the refused rows' numbers."""
    total = good_rows + len(rejected)
    numbers = np.setdiff1d(np.arange(1, total + 1, dtype=np.int64), rejected, assume_unique=True)
    if len(numbers) != good_rows:
        raise LandingError(
            f"{path}: row numbering does not add up ({good_rows} parsed rows, refused rows at "
            f"{rejected.tolist()[:10]}); expected refused rows within 1..{total}"
        )
    return numbers


# --- Parquet ---------------------------------------------------------------------------------------


def _parquet_columns(path: Path) -> list[str]:
    try:
        return [field.name for field in pq.read_schema(readable(path))]
    except (OSError, pa.ArrowException) as err:
        raise LandingError(f"{path}: cannot be read as Parquet ({err})") from err


def _read_parquet(con: duckdb.DuckDBPyConnection, path: Path, source: Source) -> tuple[pa.Table, set[str]]:
    """The source columns of each row as text (`_parquet_text`), numbered from 1 in file order."""
    found = _parquet_columns(path)
    _missing_columns(path, source, found, "Parquet schema lacks")
    present = [name for name in read_columns(source) if name in found]
    try:
        relation = con.sql("SELECT * FROM read_parquet(?, file_row_number = true)", params=[str(path)])
        types = {name: str(kind) for name, kind in zip(relation.columns, relation.types)}
        picks = "".join(f'{_parquet_text(name, types[name])} AS "{name}", ' for name in present)
        rows = con.sql(
            f"SELECT {picks}file_row_number + 1 AS _source_line, NULL::VARCHAR AS _raw_text "
            "FROM read_parquet(?, file_row_number = true) ORDER BY file_row_number",
            params=[str(path)],
        ).to_arrow_table()
    except duckdb.Error as err:
        raise LandingError(f"{path}: cannot be read as Parquet ({err})") from err
    return rows, set(present)


def _parquet_text(name: str, kind: str) -> str:
    """SQL: a Parquet value as the text a CSV would carry: a UTC-adjusted timestamp as ISO 8601 with `Z`, a
    naive one without an offset (the source's `timezone` applies), a date YYYY-MM-DD, a nested value as JSON,
    anything else as DuckDB's text (numbers, `true`/`false`)."""
    column = f'"{name}"'
    if kind == "TIMESTAMP WITH TIME ZONE":
        return iso_sql(f"timezone('UTC', {column})", "Z")
    if kind.startswith("TIMESTAMP"):
        return iso_sql(f"CAST({column} AS TIMESTAMP)", "")
    if kind == "DATE":
        return f"strftime({column}, '%Y-%m-%d')"
    if kind.startswith(("STRUCT", "MAP")) or kind.endswith("]") or kind == "JSON":
        return f"CAST(to_json({column}) AS VARCHAR)"
    return f"CAST({column} AS VARCHAR)"


_READERS = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}
