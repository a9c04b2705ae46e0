"""Raw layer: one landing day of one source, landed as it came.

`land` reads every landing file of the day and returns one row per record, every canonical column
as VARCHAR (docs/contracts.md), plus where the row came from:

- `_source_file`: the file's path relative to the data root;
- `_source_line`: 1-based line of a JSONL file, 1-based data row of a CSV file (header excluded);
- `_raw_text`: NULL for a record that parsed; for one that did not (a JSONL line that is not a JSON
  object, a CSV row with the wrong number of fields, bad encoding or an unterminated quote) the raw
  text, with every canonical column NULL. Such rows are kept, never dropped: the actionable layer
  quarantines them as `unparseable_row`.

Nothing is filtered here. Blank JSONL lines are not records and are skipped (line numbers still count
them). Source columns outside the contract are not landed. A CSV header that lacks a canonical column,
or a file that cannot be read, raises `LandingError` naming the file and what was expected.

JSONL files are split into lines with numpy (exact line numbers, any line length) and parsed by DuckDB
in one pass per line (`json_extract_string` with a list of paths). CSV files are read by DuckDB's
reader with explicit dialect and columns; refused rows come from its rejects table.

Before a day is landed, `require_feeds` stops it when a source the map declares `required` has no
file for the day (`MissingFeedError`, naming the sources and the day). Beside each raw partition a
manifest (`_landing_manifest.json`) records the landing files it was made from, with their sizes and
modification times, so that a file landing later for that day is noticed (assets/feeds.py).
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from assets.lake import Lake, write_text_atomic
from assets.pyramid_map import Source

CANONICAL_COLUMNS: dict[str, list[str]] = {
    "events": [
        "event_id",
        "user_id",
        "event_type",
        "occurred_at",
        "session_id",
        "channel",
        "campaign_id",
        "touchpoint_id",
        "properties",
    ],
    "profiles": [
        "user_id",
        "updated_at",
        "signup_at",
        "country",
        "birth_year",
        "plan",
        "consent_personalization",
        "consent_marketing",
        "email",
        "phone",
        "full_name",
    ],
    "transactions": [
        "txn_id",
        "user_id",
        "occurred_at",
        "amount",
        "currency",
        "txn_type",
        "merchant_category",
        "status",
    ],
    "erasure_requests": ["user_id", "requested_at"],
}
LINEAGE_COLUMNS = ["_source_file", "_source_line", "_raw_text"]
UTF8_BOM = b"\xef\xbb\xbf"
MANIFEST_NAME = "_landing_manifest.json"


class LandingError(RuntimeError):
    """A landing file that cannot be landed; the message names the file and what was expected."""


class MissingFeedError(LandingError):
    """A source that must land every day has no file for the day; nothing is written for that day."""


def raw_schema(source_name: str) -> pa.Schema:
    """The schema of `raw/<source>`: canonical columns as VARCHAR, then the lineage columns."""
    lineage = {"_source_file": pa.string(), "_source_line": pa.int64(), "_raw_text": pa.string()}
    return pa.schema(
        [(c, pa.string()) for c in CANONICAL_COLUMNS[source_name]] + [(c, lineage[c]) for c in LINEAGE_COLUMNS]
    )


def landing_files(lake: Lake, source: Source, ds: date) -> list[Path]:
    """The day's landing files of a source, in name order."""
    pattern = str(lake.root / source.path.format(ds=ds.isoformat()))
    return [Path(p) for p in sorted(glob.glob(pattern))]


def require_feeds(lake: Lake, sources: Iterable[Source], ds: date) -> None:
    """Raise MissingFeedError when a required source has no landing file for `ds`."""
    missing = [s for s in sources if s.required and not landing_files(lake, s, ds)]
    if missing:
        expected = "; ".join(
            f"{s.name} (expected {s.path.format(ds=ds.isoformat())} under {lake.root})" for s in missing
        )
        raise MissingFeedError(
            f"landing day {ds} is incomplete: no file for required source {expected}. Nothing was written for "
            f"{ds}. Land the file, then re-run the day and the days after it (`pyramid run --start {ds}`); "
            "or declare the source `required: false` in the map if it may skip a day."
        )


def landing_manifest(lake: Lake, files: Iterable[Path]) -> list[dict]:
    """Each landing file (path relative to the data root) with its size and modification time."""
    manifest = []
    for path in files:
        stat = path.stat()
        manifest.append({"file": _relative(path, lake), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return sorted(manifest, key=lambda entry: entry["file"])


def manifest_path(lake: Lake, source_name: str, ds: date) -> Path:
    return lake.partition_file("raw", source_name, ds).with_name(MANIFEST_NAME)


def write_manifest(lake: Lake, source_name: str, ds: date, manifest: list[dict]) -> Path:
    """Record, beside the raw partition, the landing files it was made from (atomically)."""
    path = manifest_path(lake, source_name, ds)
    return write_text_atomic(json.dumps({"files": manifest}, indent=1, sort_keys=True) + "\n", path)


def read_manifest(lake: Lake, source_name: str, ds: date) -> list[dict] | None:
    """The recorded landing files of a raw partition; None when it has no manifest."""
    path = manifest_path(lake, source_name, ds)
    if not path.exists():
        return None
    return json.loads(path.read_text())["files"]


def land(
    con: duckdb.DuckDBPyConnection, lake: Lake, source: Source, ds: date, files: list[Path] | None = None
) -> pa.Table:
    """Every record of the source's landing files for `ds` (or of `files`), as VARCHAR, with its file and line."""
    schema = raw_schema(source.name)
    reader = _land_jsonl if source.format == "jsonl" else _land_csv
    paths = landing_files(lake, source, ds) if files is None else files
    tables = [reader(con, path, lake, source).cast(schema) for path in paths]
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _relative(path: Path, lake: Lake) -> str:
    try:
        return path.resolve().relative_to(lake.root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def canonical_to_source(source: Source) -> dict[str, str]:
    """canonical name -> the name the source uses for it (`columns` in the map maps source -> canonical)."""
    mapping = {canonical: canonical for canonical in CANONICAL_COLUMNS[source.name]}
    for source_name, canonical in source.columns.items():
        mapping[canonical] = source_name
    return mapping


def unexpected_columns(names: Iterable[str], source: Source) -> list[str]:
    """The column names (a CSV header, JSON keys) that the source's contract does not know, in order."""
    known = set(canonical_to_source(source).values())
    return [name for name in dict.fromkeys(names) if name not in known]


def renamed_hint(unexpected: list[str]) -> str:
    """What a missing column beside unknown ones suggests: a rename upstream, or one unsplit header."""
    if len(unexpected) == 1 and any(mark in unexpected[0] for mark in ";\t|"):
        return f"; found one column {unexpected[0][:80]!r}: a wrong delimiter? (expected ',')"
    if not unexpected:
        return ""
    shown = ", ".join(repr(name[:40]) for name in unexpected[:5]) + (", ..." if len(unexpected) > 5 else "")
    return (
        f"; unexpected: {shown} (renamed upstream? map the source's name to the canonical one under "
        "`columns` of the source in pyramid.yaml, or ask the sender for the contract's names)"
    )


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise LandingError(f"{path}: cannot be read ({err.strerror or err})") from err


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


def _land_jsonl(con: duckdb.DuckDBPyConnection, path: Path, lake: Lake, source: Source) -> pa.Table:
    canonical = CANONICAL_COLUMNS[source.name]
    to_source = canonical_to_source(source)
    json_paths = ", ".join(_json_path_literal(to_source[c]) for c in canonical)
    picks = ", ".join(f"v[{i + 1}] AS {c}" for i, c in enumerate(canonical))
    con.register("_landing_lines", _split_lines(con, _read_bytes(path)))
    try:
        return con.sql(
            f"""
            SELECT {picks}, ? AS _source_file, _source_line,
                   CASE WHEN v IS NULL THEN coalesce(undecodable, rtrim(text, chr(13) || chr(10))) END AS _raw_text
            FROM (
                SELECT _source_line, text, undecodable,
                       CASE WHEN json_type(json_text) = 'OBJECT' THEN json_extract_string(json_text, [{json_paths}]) END AS v
                FROM (SELECT *, CASE WHEN json_valid(text) THEN text END AS json_text FROM _landing_lines)
            )
            WHERE v IS NOT NULL OR undecodable IS NOT NULL OR trim(text, ' ' || chr(9) || chr(13) || chr(10)) <> ''
        """,  # noqa: E501
            params=[_relative(path, lake)],
        ).to_arrow_table()  # a projection keeps the file's order
    finally:
        con.unregister("_landing_lines")


def _json_path_literal(key: str) -> str:
    escaped = key.replace("\\", "\\\\").replace('"', '\\"').replace("'", "''")
    return f"'$.\"{escaped}\"'"


# --- CSV -------------------------------------------------------------------------------------------


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise LandingError(f"{path}: cannot read the CSV header ({err})") from err
    if not header:
        raise LandingError(f"{path}: empty file; expected a CSV header line")
    return [name.strip() for name in header]


def _check_header(path: Path, header: list[str], source: Source) -> None:
    to_source = canonical_to_source(source)
    missing = [
        f"{to_source[c]!r}" + (f" (canonical {c!r})" if to_source[c] != c else "")
        for c in CANONICAL_COLUMNS[source.name]
        if to_source[c] not in header
    ]
    if missing:
        raise LandingError(
            f"{path}: CSV header lacks {', '.join(missing)}; expected columns for source {source.name!r}: "
            f"{', '.join(to_source[c] for c in CANONICAL_COLUMNS[source.name])}; found: {', '.join(header)}"
            f"{renamed_hint(unexpected_columns(header, source))}"
        )
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise LandingError(f"{path}: CSV header repeats {', '.join(duplicated)}; each column must appear once")


def _land_csv(con: duckdb.DuckDBPyConnection, path: Path, lake: Lake, source: Source) -> pa.Table:
    header = _csv_header(path)
    _check_header(path, header, source)
    good, rejected = _read_csv_rows(con, path, header)
    to_source = canonical_to_source(source)
    canonical = CANONICAL_COLUMNS[source.name]
    good_numbers = _good_row_numbers(path, good.num_rows, rejected.column("_source_line").to_numpy())
    con.register("_landing_good", good.append_column("_source_line", pa.array(good_numbers, pa.int64())))
    con.register("_landing_rejected", rejected)
    try:
        good_cols = ", ".join(f'"{to_source[c]}" AS {c}' for c in canonical)
        null_cols = ", ".join(f"NULL::VARCHAR AS {c}" for c in canonical)
        return con.sql(
            f"""
            SELECT {good_cols}, $file AS _source_file, _source_line, NULL::VARCHAR AS _raw_text FROM _landing_good
            UNION ALL
            SELECT {null_cols}, $file, _source_line, _raw_text FROM _landing_rejected
            ORDER BY _source_line
        """,
            params={"file": _relative(path, lake)},
        ).to_arrow_table()
    finally:
        con.unregister("_landing_good")
        con.unregister("_landing_rejected")


def _read_csv_rows(con: duckdb.DuckDBPyConnection, path: Path, header: list[str]) -> tuple[pa.Table, pa.Table]:
    """The rows that parsed (file order) and the refused ones (data row number, raw text)."""
    columns = "{" + ", ".join(f"'{name.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for name in header) + "}"
    try:
        good = con.sql(
            f"""
            SELECT * FROM read_csv(?, columns = {columns}, header = true, delim = ',', quote = '"',
                                   escape = '"', auto_detect = false, ignore_errors = true,
                                   store_rejects = true, rejects_table = '_landing_rejects',
                                   rejects_scan = '_landing_scans')
        """,
            params=[str(path)],
        ).to_arrow_table()
        rejected = con.sql("""
            SELECT (line - 1)::BIGINT AS _source_line, trim(any_value(csv_line), chr(10) || chr(13)) AS _raw_text
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
