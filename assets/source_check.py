"""The map against the data: is each declared source found, are its mapped columns there, do its first rows parse?

`pyramid check` runs it over every landed day, `pyramid run` over the days it is about to run, before
anything is written. For each source of the map:

- its landing files and days. An error when a required source has no file on a day on which another
  source landed (`pyramid run`: on a day to run), since that day would stop; no landing file at all
  under the data root is only a warning (nothing landed yet);
- its mapped columns, in the first landing file of its first landed day (and, for `pyramid check`, of
  its last): a wrong mapping shows there, whichever days a run covers, while a file that breaks later is
  refused by its own day's raw step (a file fault). A CSV header must hold every column of the source
  (the raw layer's rule, `assets/raw.py`), JSON lines the required ones (those its suite expects not
  null, `assets/file_faults.py`) in at least one of the first FIRST_ROWS records. A missing one is an
  error naming the file, the line and the column, with the closest name found (`difflib`);
- its first FIRST_ROWS records, landed by the raw layer's reader and typed by the contract's rules
  (`file_faults.valid_sql`). A column whose values nearly all fail their type (the file-fault share,
  at least MIN_VALUES of them) is an error: the mapping or the file is wrong. A single bad value or an
  unparseable record is a row fault that the run quarantines: a warning naming file, line and column.

Values are shown for timestamps, amounts, years and flags only; for an id, a code or JSON the message
says what kind of value it found, as the file faults do.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import pyarrow as pa

from assets.file_faults import EXPECTED, KINDS, SHOWN_KINDS, TYPE_CHANGED_SHARE, required_columns, valid_sql
from assets.lake import Lake, connect
from assets.landing import LandingError
from assets.pyramid_map import NOT_DECLARED, SOURCE_NAMES, PyramidMap, Source
from assets.quality.typed_batch import text_sql
from assets.raw import CANONICAL_COLUMNS, UTF8_BOM, canonical_to_source, land

FIRST_ROWS = 100  # records of a file looked at
MIN_VALUES = 3  # a column's values failing their type make an error only from this many on
SHOWN_ROW_FAULTS = 5  # row faults named one by one per file; the rest are counted
DAY = r"(\d{4}-\d{2}-\d{2})"
OTHERS_LANDED = "on which other sources landed"


@dataclass(frozen=True)
class Finding:
    """One line of the data check: an error stops `pyramid check` (exit 2) and `pyramid run`."""

    level: Literal["error", "warning", "info"]
    text: str


def check_sources(lake: Lake, pyramid_map: PyramidMap, days: list[date] | None = None) -> list[Finding]:
    """The findings for every source of the map, over `days` (None: every landed day)."""
    landed = {name: landed_days(lake, source) for name, source in pyramid_map.sources.items()}
    findings = [
        Finding("info", f"{name}: {NOT_DECLARED} (not declared in the map; its tables stay empty)")
        for name in SOURCE_NAMES
        if name not in pyramid_map.sources
    ]
    if days is None and not any(landed.values()):
        where = ", ".join(s.path for s in pyramid_map.sources.values())
        return [*findings, Finding("warning", f"no landing file found under {lake.root} yet (expected {where})")]
    scope = sorted(set(days) if days is not None else {d for found in landed.values() for d in found})
    for name, source in pyramid_map.sources.items():
        found = {d: files for d, files in landed[name].items() if d in scope}
        findings += _coverage(lake, source, found, scope, "to run" if days is not None else OTHERS_LANDED)
        sampled = [landed[name][d][0] for d in sorted(landed[name])]  # the mapping is checked on the first day
        for path in dict.fromkeys(sampled[:1] + (sampled[-1:] if days is None else [])):
            findings += file_findings(lake, source, path)
    return findings


def landed_days(lake: Lake, source: Source) -> dict[date, list[Path]]:
    """Every landed day of a source with its files (the day is read from the `{ds}` part of each path)."""
    regex = re.compile(DAY.join(_glob_regex(part) for part in str(lake.root / source.path).split("{ds}")))
    found: dict[date, list[Path]] = {}
    for path in sorted(lake.root.glob(source.path.replace("{ds}", "*"))):
        match = regex.fullmatch(str(path))
        try:
            day = date.fromisoformat(match.group(1)) if match else None
        except ValueError:
            day = None
        if day is not None:
            found.setdefault(day, []).append(path)
    return found


def _glob_regex(part: str) -> str:
    return "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part)


def _coverage(
    lake: Lake, source: Source, found: dict[date, list[Path]], scope: list[date], which: str
) -> list[Finding]:
    """Which days the source landed; an error for the days a required source lacks."""
    missing = [d for d in scope if d not in found] if source.required else []
    findings = []
    if found:
        first, last = min(found), max(found)
        files = sum(len(f) for f in found.values())
        findings.append(Finding("info", f"{source.name}: {len(found)} landing days ({first} .. {last}), {files} files"))
    else:
        findings.append(Finding("info", f"{source.name}: no landing file"))
    if missing:
        shown = days_shown(missing)
        findings.append(
            Finding(
                "error",
                f"{source.name}: no landing file for {_days(len(missing))} {which} ({shown}); "
                f"expected {source.path.format(ds=missing[0].isoformat())} under {lake.root}. A required source "
                "stops such a day: land its files, or declare it `required: false` in the map",
            )
        )
    return findings


def days_shown(days: list[date], first: int = 5) -> str:
    """`2026-10-01, 2026-10-02 and 3 more`."""
    more = f" and {len(days) - first} more" if len(days) > first else ""
    return ", ".join(d.isoformat() for d in days[:first]) + more


def _days(count: int) -> str:
    return f"{count} day" + ("" if count == 1 else "s")


def file_findings(lake: Lake, source: Source, path: Path) -> list[Finding]:
    """The findings of one landing file: its mapped columns, then its first FIRST_ROWS records."""
    try:
        present, first_line = _columns(path, source.format)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        return [Finding("error", f"{path}: cannot be read as {source.format} ({err})")]
    missing = _missing_columns(path, source, present, first_line)
    if missing:
        return missing
    with tempfile.TemporaryDirectory(prefix="pyramid-check-") as folder:
        head, cut = _head(path, Path(folder) / path.name, source.format)
        try:
            table = land(connect(), lake, source, date.today(), files=[head])
        except LandingError as err:
            return [Finding("error", str(err).replace(str(head), str(path)))]
    if cut and table.num_rows:
        table = table.slice(0, table.num_rows - 1)  # the last record may be cut short by the head
    return _row_findings(path, source, table)


def _columns(path: Path, source_format: str) -> tuple[list[str], int]:
    """The column names of a file (a CSV header; the keys of the first JSON records) and the line they start on."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if source_format == "csv":
            return [name.strip() for name in next(csv.reader(handle), [])], 1
        keys: dict[str, None] = {}
        first = 0
        for number, line in enumerate(handle, start=1):
            if number > FIRST_ROWS:
                break
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                keys.update(dict.fromkeys(record))
                first = first or number
        return list(keys), max(first, 1)


def _missing_columns(path: Path, source: Source, present: list[str], line: int) -> list[Finding]:
    """An error for each column the source needs that the file lacks, with the closest name found."""
    to_source = canonical_to_source(source)
    needed = CANONICAL_COLUMNS[source.name] if source.format == "csv" else required_columns(source.name)
    where = "its header" if source.format == "csv" else f"the first {FIRST_ROWS} records"
    unknown = [name for name in present if name not in set(to_source.values())]
    findings = []
    for canonical in needed:
        name = to_source.get(canonical)  # None: a constant, an expression or a generated key fills it
        if name is None or name in present:
            continue
        alias = f" (canonical {canonical!r})" if name != canonical else ""
        findings.append(
            Finding(
                "error",
                f"{path}:{line}: column {name!r}{alias} of source {source.name!r} is missing from {where}"
                f"{close_match(name, unknown, source, canonical)}; found: {', '.join(present[:15]) or 'nothing'}",
            )
        )
    return findings


def close_match(name: str, candidates: list[str], source: Source, canonical: str) -> str:
    """`; did you mean 'x'? ...` for the closest candidate, with how to map it; "" when none is close."""
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    if not matches:
        return ""
    return (
        f"; did you mean {matches[0]!r}? (map it under sources.{source.name}.columns in the map: "
        f"{{{matches[0]}: {canonical}}})"
    )


def _head(path: Path, copy: Path, source_format: str) -> tuple[Path, bool]:
    """A copy of the file's first FIRST_ROWS records (and header); whether the file went on after them."""
    keep = FIRST_ROWS + (1 if source_format == "csv" else 0)
    lines = []
    with path.open("rb") as handle:
        for line in handle:
            if len(lines) == keep:
                break
            lines.append(line)
        cut = len(lines) == keep and bool(handle.read(1))
    data = b"".join(lines)
    copy.write_bytes(data[len(UTF8_BOM) :] if data.startswith(UTF8_BOM) else data)
    return copy, cut and source_format == "csv"


def _row_findings(path: Path, source: Source, table: pa.Table) -> list[Finding]:
    """Errors for columns whose values nearly all fail their type; warnings for single bad values or rows."""
    to_source = canonical_to_source(source)
    faults = [(line, None, "does not parse as " + source.format) for line in _unparsed(table)]
    findings = []
    for column, kind in KINDS.get(source.name, {}).items():
        values, bad = _bad_values(table, column, kind)
        read = to_source.get(column)  # None: filled by the map (a constant, an expression, a generated key)
        name = (
            f"{column!r} (from the map)"
            if read is None
            else repr(read) + (f" (canonical {column!r})" if read != column else "")
        )
        if bad and len(bad) >= MIN_VALUES and len(bad) >= TYPE_CHANGED_SHARE * values:
            line, value = bad[0]
            findings.append(
                Finding(
                    "error",
                    f"{path}:{line}: column {name} of source {source.name!r}: expected {EXPECTED[kind]}; found "
                    f"{_shown(value, kind)} ({len(bad)} of the first {values} values are not): is the right column "
                    f"mapped under sources.{source.name}.columns?",
                )
            )
            continue
        faults += [(line, name, f"expected {EXPECTED[kind]}; found {_shown(value, kind)}") for line, value in bad]
    faults.sort(key=lambda fault: fault[0])
    for line, name, what in faults[:SHOWN_ROW_FAULTS]:
        column = f" column {name}:" if name else ""
        findings.append(Finding("warning", f"{path}:{line}:{column} {what} (the run quarantines the row)"))
    if len(faults) > SHOWN_ROW_FAULTS:
        findings.append(
            Finding("warning", f"{path}: {len(faults) - SHOWN_ROW_FAULTS} more row faults in its first rows")
        )
    return findings


def _unparsed(table: pa.Table) -> list[int]:
    return [row["_source_line"] for row in table.select(["_source_line", "_raw_text"]).to_pylist() if row["_raw_text"]]


def _bad_values(table: pa.Table, column: str, kind: str) -> tuple[int, list[tuple[int, str]]]:
    """The column's non-null values among the parsed rows, and (line, value) of those not of its type."""
    value = text_sql(f'"{column}"')
    con = connect()
    try:
        con.register("_check_rows", table)
        rows = con.sql(
            f"SELECT _source_line, {value}, NOT ({valid_sql(kind, column)}) FROM _check_rows "
            f"WHERE _raw_text IS NULL AND {value} IS NOT NULL ORDER BY _source_line"
        ).fetchall()
    finally:
        con.close()
    return len(rows), [(line, text) for line, text, bad in rows if bad]


def _shown(value: str, kind: str) -> str:
    """The value itself for timestamps, amounts, years and flags; only its kind otherwise (ids, codes, JSON)."""
    if kind in SHOWN_KINDS:
        return repr(value[:40])
    return "a JSON object or array (value not shown)" if value[:1] in "{[" else "another value (not shown)"
