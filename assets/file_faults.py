"""Whole-file faults of a landing file: what no row-level quarantine can express.

A line that does not parse is a row fault: it is landed with its raw text and quarantined. A file fault
stops landing with a `LandingError` naming the file and the problem, before anything of the day is
written, so that the lake keeps its earlier (complete) data for that day:

- a file that holds no record, or in which no record parses (sent in UTF-16, a truncated or compressed
  file, CSV where JSON lines were due);
- a column renamed upstream: a CSV header without a required column (`assets/raw.py`, which also names
  the header's unknown columns), or JSON lines in which a required column (one the source's suite
  expects not null) is absent from every record while a key the contract does not know is present;
- a type changed upstream: at least `TYPE_CHANGED_SHARE` of the non-null values of a typed column, and
  at least `MIN_TYPED_VALUES` of them, fail the contract's typing (`assets/quality/typed_batch.py`):
  `amount` as "12,50", timestamps as epoch seconds, an id as JSON objects. A file of mostly good rows
  with some bad ones is not a file fault: its bad rows are quarantined row by row, with their reason.

A file fault of one source stops every raw step of the day (`require_sound_files`), as a missing feed
does: re-landing an old day only part way would leave its other sources' partitions re-landed from the
landing files, with the users erased since back in them, and no erasure step run to remove them.

The message shows a few of the values found for timestamps, amounts, years and flags; for an id, a code,
`properties` or a PII column it only says what kind of value it found, never a value.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from assets.lake import Lake, connect
from assets.landing import LandingError, landing_files
from assets.pyramid_map import Source
from assets.quality.typed_batch import amount_sql, flag_sql, text_sql, timestamp_sql, year_sql
from assets.raw import land, renamed_hint, unexpected_columns
from assets.source_mapping import KINDS, canonical_to_source, read_columns, required_columns

TYPE_CHANGED_SHARE = 0.95  # this share of a column's non-null values failing its type makes a file fault
MIN_TYPED_VALUES = 20  # below this many non-null values a column's bad values stay row faults
FIRST_LOOK_ROWS = 2_000  # the first rows of a file are looked at first; the whole file only when they fail
FIRST_LOOK_BYTES = 256 * 1024  # the same for another source's files, checked by each raw step of the day
GZIP_MAGIC = b"\x1f\x8b"
REFUSED = "the file is refused and nothing of the day is written"

EXPECTED = {
    "timestamp": "an ISO 8601 timestamp with an offset, e.g. 2026-10-01T10:00:00Z",
    "amount": "a number with a decimal point, e.g. 12.50",
    "year": "a 4-digit year",
    "flag": "true or false",
    "json": "JSON",
    "text": "a single value (text or a number)",
}
SHOWN_KINDS = ("timestamp", "amount", "year", "flag")  # other columns (ids, codes, JSON) are described only


def check_files(table: pa.Table, files: list[Path], source: Source) -> None:
    """Raise LandingError for the first landing file that is empty, in which no record parses, whose
    required column was renamed upstream or whose column's type changed upstream."""
    per_file = table.group_by("_source_file").aggregate(
        [
            ("_raw_text", "count", pc.CountOptions(mode="all")),
            ("_raw_text", "count", pc.CountOptions(mode="only_null")),  # a parsed record keeps no raw text
        ]
    )
    names = per_file.column("_source_file").to_pylist()
    all_rows, parsed_rows = (
        per_file.column(i).to_pylist() for i, n in enumerate(per_file.column_names) if n != "_source_file"
    )
    records, good = dict(zip(names, all_rows)), dict(zip(names, parsed_rows))
    for path in files:
        key = next((n for n in records if path.as_posix().endswith(n)), None)
        if key is None and source.format == "jsonl":
            raise LandingError(f"{path}: empty file; expected JSON lines, one {source.name} record per line")
        if key is not None and good[key] == 0:
            hint = _hint(table, key, path, source)
            raise LandingError(
                f"{path}: none of its {records[key]} records parses as {source.format} ({hint}); {REFUSED}"
            )
        if key is not None:
            parsed = table.filter(pc.and_(pc.equal(table.column("_source_file"), key), pc.is_null(table["_raw_text"])))
            if source.format == "jsonl":
                _check_keys(path, parsed, source)
            _check_types(path, parsed, source)


class DayRefused(LandingError):
    """Another source's file fault stops this source's raw step too (the operator is shown that fault's own
    step first, pipelines/errors.py)."""


def require_sound_files(lake: Lake, sources: Iterable[Source], ds: date, skip: str) -> None:
    """Raise DayRefused when another source of the day has a file fault: a fault stops every raw step
    of the day, as a missing feed does, so that no source re-lands an old day whose run cannot finish
    (a re-landed partition holds the users erased since, until the day's erasure step runs)."""
    for source in sources:
        if source.name == skip:
            continue
        fault = _fault(lake, source, ds, landing_files(lake, source, ds))
        if fault is not None:
            raise DayRefused(
                f"landing day {ds} is refused: {fault}. No source of the day is landed ({skip} neither): "
                f"re-deliver the file, then re-run the day (`pyramid run --start {ds}`)"
            )


def _fault(lake: Lake, source: Source, ds: date, files: list[Path]) -> str | None:
    """The file fault of a source's landing files, if any; remembered per file version (the raw steps of
    one run ask about the same files). The first bytes of each file are checked first, the whole files
    only when they look faulty, so a fault is never reported that the source's own step would not find."""
    key = (str(lake.root), source.name, tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if key not in _FAULTS:
        if len(_FAULTS) > 64:
            _FAULTS.clear()
        with tempfile.TemporaryDirectory(prefix="pyramid-first-look-") as folder:
            heads = [_head(path, Path(folder) / f"{n}-{path.name}", source) for n, path in enumerate(files)]
            suspect = _fault_of(lake, source, ds, heads) is not None  # cheap: the first bytes of each file
        _FAULTS[key] = _fault_of(lake, source, ds, files) if suspect else None
    return _FAULTS[key]


def _fault_of(lake: Lake, source: Source, ds: date, files: list[Path]) -> str | None:
    try:
        check_files(land(connect(), lake, source, ds, files), files, source)
    except LandingError as err:
        return str(err)
    return None


def _head(path: Path, copy: Path, source: Source) -> Path:
    """A copy of the file's first FIRST_LOOK_BYTES, cut after its last whole line; the file itself when it
    cannot be cut (Parquet, gzip)."""
    if source.format == "parquet" or source.compression == "gzip":
        return path
    with path.open("rb") as handle:
        data = handle.read(FIRST_LOOK_BYTES)
    if len(data) == FIRST_LOOK_BYTES and b"\n" in data:
        data = data[: data.rindex(b"\n") + 1]
    copy.write_bytes(data)
    return copy


_FAULTS: dict[tuple, str | None] = {}


def _hint(table: pa.Table, name: str, path: Path, source: Source) -> str:
    with path.open("rb") as handle:
        if handle.read(2) == GZIP_MAGIC and source.compression != "gzip":
            return "gzip-compressed, perhaps cut off: landing files are uncompressed; re-deliver it decompressed"
    texts = table.filter(pc.equal(table.column("_source_file"), name)).column("_raw_text").to_pylist()
    if any("\\x" in (t or "") for t in texts[:100]):
        return "not UTF-8: re-deliver it encoded as UTF-8"
    return "not the declared format, a wrong delimiter, a compressed or a truncated file"


# --- renamed upstream (JSON lines; CSV headers are checked on landing) ---------------------------------


def _check_keys(path: Path, parsed: pa.Table, source: Source) -> None:
    """A required column absent from every record while an unknown key is present: renamed upstream."""
    absent = [c for c in required_columns(source.name) if parsed.column(c).null_count == parsed.num_rows]
    if not absent:
        return
    keys = _jsonl_keys(path, source)
    to_source = canonical_to_source(source)
    missing = [to_source[c] for c in absent if c in to_source and to_source[c] not in keys]
    unexpected = unexpected_columns(keys, source)
    if missing and unexpected:
        raise LandingError(
            f"{path}: no record has the key {', '.join(map(repr, missing))}"
            f"{renamed_hint(unexpected)}; expected keys for source {source.name!r}: "
            f"{', '.join(read_columns(source))}; {REFUSED}"
        )


def _jsonl_keys(path: Path, source: Source) -> list[str]:
    """Every key of the file's JSON objects, in order of first appearance (a rare path: no column found)."""
    keys: dict[str, None] = {}
    with (gzip.open if source.compression == "gzip" else open)(path, "rb") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:  # not JSON, or not UTF-8: a row fault, quarantined
                continue
            if isinstance(record, dict):
                keys.update(dict.fromkeys(record))
    return list(keys)


# --- type changed upstream -----------------------------------------------------------------------------


def _check_types(path: Path, parsed: pa.Table, source: Source) -> None:
    """Refuse the file when a typed column's non-null values (nearly) all fail the contract's type."""
    kinds = KINDS.get(source.name, {})
    if not kinds or parsed.num_rows == 0:
        return
    if not _changed(parsed.slice(0, FIRST_LOOK_ROWS), kinds, minimum=1):
        return  # the usual case: one cheap look at the first rows
    changed = _changed(parsed, kinds, minimum=MIN_TYPED_VALUES)
    if changed:
        column, values, bad = changed[0]
        to_source = canonical_to_source(source)
        shown = to_source.get(column, column)  # a constant's, an expression's or a generated key's own name
        name = repr(shown) + (f" (canonical {column!r})" if shown != column else "")
        raise LandingError(
            f"{path}: the type of column {name} changed upstream? {bad} of its {values} non-null values are "
            f"not {EXPECTED[kinds[column]]} (found {_found(parsed, column, kinds[column])}); {REFUSED}. Ask "
            "for the file again in the contract's types (docs/contracts.md), then re-run the day"
        )


def valid_sql(kind: str, column: str) -> str:
    """SQL that is TRUE when the raw VARCHAR `column` (not blank) has the contract's type."""
    value = f'"{column}"'
    if kind == "timestamp":
        return f"{timestamp_sql(value)} IS NOT NULL"
    if kind == "amount":
        return f"{amount_sql(value)} IS NOT NULL"
    if kind == "year":
        return f"{year_sql(value)} IS NOT NULL"
    if kind == "flag":
        return f"{flag_sql(value)} IN ('true', 'false')"
    if kind == "json":
        return f"coalesce(json_valid({value}), false)"
    # text: a scalar; a JSON object or array where an id or a code is due is a changed type
    text = text_sql(value)
    return f"NOT (left({text}, 1) IN ('{{', '[') AND coalesce(json_valid({text}), false))"


def _changed(rows: pa.Table, kinds: dict[str, str], minimum: int) -> list[tuple[str, int, int]]:
    """(column, non-null values, values not of its type) of each column whose type looks changed."""
    counts = []
    for column, kind in kinds.items():
        present = f"{text_sql(chr(34) + column + chr(34))} IS NOT NULL"
        counts.append(f"count(*) FILTER ({present})")
        counts.append(f"count(*) FILTER ({present} AND NOT ({valid_sql(kind, column)}))")
    con = connect()
    try:
        con.register("_file_rows", rows)
        figures = con.sql(f"SELECT {', '.join(counts)} FROM _file_rows").fetchall()[0]
    finally:
        con.close()
    changed = []
    for i, column in enumerate(kinds):
        values, bad = figures[2 * i], figures[2 * i + 1]
        if values >= minimum and bad >= TYPE_CHANGED_SHARE * values:
            changed.append((column, values, bad))
    return changed


def _found(rows: pa.Table, column: str, kind: str) -> str:
    """A few values not of the type (timestamps, amounts, years, flags), or only what kind of values they are."""
    value = text_sql(f'"{column}"')
    bad = f"{value} IS NOT NULL AND NOT ({valid_sql(kind, column)})"
    con = connect()
    try:
        con.register("_file_rows", rows)
        if kind in SHOWN_KINDS:
            found = con.sql(f"SELECT DISTINCT {value} FROM _file_rows WHERE {bad} ORDER BY 1 LIMIT 3").fetchall()
            return ", ".join(repr(v[:40]) for (v,) in found)
        shape = f"CASE WHEN coalesce(json_valid({value}), false) THEN lower(json_type({value})) ELSE 'text' END"
        found = con.sql(f"SELECT DISTINCT {shape} FROM _file_rows WHERE {bad} ORDER BY 1").fetchall()
    finally:
        con.close()
    kinds = {"object": "JSON objects", "array": "JSON arrays", "varchar": "text", "text": "text"}
    return "values not shown: " + ", ".join(dict.fromkeys(kinds.get(k, "numbers") for (k,) in found))
