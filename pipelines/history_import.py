"""`pyramid import`: a history export of one source landed into its daily landing partitions.

An export (one file or many, not split by day, in the source's declared format) is read through the raw
layer's own reader (`assets/raw.py`, `land`), so the map's column mapping applies as it does to a daily
file. Each record goes to the landing partition of the UTC day of its event time, the source's timestamp
column of the contract (`EVENT_TIME`: events and transactions `occurred_at`, profiles `updated_at`,
erasure requests `requested_at`), typed by the contract's rule (ISO 8601 with an offset,
`assets/quality/typed_batch.py`). Records are copied byte for byte: a JSON line as it was, a CSV record
under the export's header, so that `pyramid run` reads a day's file exactly as it would have read the
export.

- A day's file is named by the source's `path` with `{ds}` the day and `*` read as `imported`
  (`landing/events/{ds}/*.jsonl` -> `landing/events/2026-10-01/imported.jsonl`). Each is staged under
  `<data root>/tmp/`, then moved beside its target and renamed onto it: a reader sees no half file.
- Profiles and erasure requests carry state (a profile as last updated, an erasure asked for): a record
  dated before the start of history (`first_day`, the map's `schedule.start_date`) lands on that first
  day, where the run reads it. Events and transactions keep their own days (a run reads them only once
  `start_date` moves back to them).
- A day that already has a landing file is refused (nothing is written) unless `replace`: then the new
  file replaces the day's files.
- A record without a parseable event time (a line that does not parse, a timestamp without an offset)
  has no day. It is not dropped: it is copied, as it was, to `<data root>/import/<source>/unplaced-<time>`
  in the source's format, and each is reported by file and line (`_source_line` of docs/contracts.md).
  When no record of the export has one, the export is refused: the mapping is wrong, not the rows.
"""

from __future__ import annotations

import fnmatch
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.lake import Lake, atomic_path, connect
from assets.landing import LandingError, landing_files
from assets.pyramid_map import Source
from assets.quality.typed_batch import timestamp_sql
from assets.raw import UTF8_BOM, canonical_to_source, land
from assets.source_check import days_shown

EVENT_TIME = {"events": "occurred_at", "transactions": "occurred_at", "profiles": "updated_at"}
EVENT_TIME["erasure_requests"] = "requested_at"
FILE_NAME = "imported"  # what `*` of the source's path becomes in a day's file name
SHOWN_UNPLACED = 10  # unplaced records named one by one; the rest are counted
SUPPORTED_FORMATS = ("jsonl", "csv")
EPOCH = date(1970, 1, 1)
STATE_SOURCES = ("profiles", "erasure_requests")  # a record before the first day lands on it


class ImportRefused(RuntimeError):
    """Nothing was imported; the message says why and what to do."""

    def __init__(self, message: str, exit_code: int, todo: str = "correct the export or the map, then import again"):
        super().__init__(message)
        self.exit_code = exit_code
        self.todo = todo


@dataclass
class ImportResult:
    """What an import wrote: rows per day, the files, and the records without a day."""

    rows_per_day: dict[date, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    unplaced: list[tuple[str, int]] = field(default_factory=list)  # (file, line), every one
    unplaced_path: Path | None = None


@dataclass(frozen=True)
class _Records:
    """A file's records as bytes (each ending with a newline), their `_source_line`, the CSV header."""

    records: pa.LargeBinaryArray
    numbers: np.ndarray
    header: bytes


def import_history(
    lake: Lake,
    source: Source,
    files: list[Path],
    replace: bool = False,
    progress: Callable[[int], None] | None = None,
    first_day: date | None = None,
) -> ImportResult:
    """Land the export `files` of `source` into daily landing partitions; `progress(bytes)` after each file.
    `first_day`: the start of history, onto which the STATE_SOURCES' earlier records land."""
    _refuse_unsupported(source)
    day_file(lake, source, EPOCH)  # a path the import cannot name a file after is refused before any work
    staging = lake.root / "tmp" / f"import-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        result, headers = ImportResult(), {}
        for path in files:
            headers[path] = _stage_file(lake, source, path, staging, result, first_day)
            _refuse_other_header(headers)
            if progress:
                progress(path.stat().st_size)
        _refuse_without_days(source, result)
        _refuse_overwrite(lake, source, result, replace)
        _commit(lake, source, staging, result, replace)
        if result.unplaced:
            result.unplaced_path = _keep_unplaced(lake, source, staging)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_unsupported(source: Source) -> None:
    """The import splits text records by their bytes: plain JSON lines, or CSV with a header and `"` quotes."""
    problem = ""
    if source.format not in SUPPORTED_FORMATS:
        problem = f"source {source.name!r} is {source.format}"
    elif source.compression != "none":
        problem = f"source {source.name!r} is {source.compression}-compressed (decompress the export first)"
    elif source.format == "csv" and (not source.csv.header or source.csv.quote != '"'):
        problem = f"source {source.name!r} declares a CSV without a header or with another quote than '\"'"
    if problem:
        raise ImportRefused(
            f"pyramid import reads uncompressed JSON lines and CSV with a header and '\"' quotes; {problem}", 2
        )


def event_days(table: pa.Table, column: str) -> pa.Table:
    """`_source_line` and the UTC day of the event time (NULL when it does not parse) of landed rows."""
    quoted = '"' + column + '"'
    con = connect()
    try:
        con.register("_import_rows", table)
        return con.sql(
            f"SELECT _source_line, CAST({timestamp_sql(quoted)} AS DATE) AS day FROM _import_rows"
        ).to_arrow_table()
    finally:
        con.close()


def day_file(lake: Lake, source: Source, day: date) -> Path:
    """The file an import writes for `day`: the source's path, `{ds}` the day, `*` read as FILE_NAME."""
    pattern = source.path.format(ds=day.isoformat())
    name = pattern.replace("*", FILE_NAME)
    if not fnmatch.fnmatchcase(name, pattern) or any(c in name for c in "?["):
        raise ImportRefused(
            f"cannot name a landing file for source {source.name!r} from its path {source.path!r}: "
            "use `*` as the only wildcard (e.g. landing/events/{ds}/*.jsonl)",
            2,
        )
    return lake.root / name


def _stage_file(
    lake: Lake, source: Source, path: Path, staging: Path, result: ImportResult, first_day: date | None
) -> bytes:
    """Append the file's records to the staged file of their day (or the unplaced one); its CSV header."""
    con = connect()
    try:
        table = land(con, lake, source, date.today(), files=[path])
    except LandingError as err:
        raise ImportRefused(f"{err}; nothing was imported", 1) from err
    finally:
        con.close()
    found = _records(path, source.format)
    index = _record_index(found, table, path, source.format)
    days = event_days(table, EVENT_TIME[source.name]).column("day")
    placed = pc.is_valid(days).to_numpy(zero_copy_only=False)
    day_numbers = days.cast(pa.int32()).fill_null(0).to_numpy()  # days since 1970-01-01
    if first_day is not None and source.name in STATE_SOURCES:
        day_numbers = np.maximum(day_numbers, (first_day - EPOCH).days)
    for number in np.unique(day_numbers[placed]):
        chosen = index[placed & (day_numbers == number)]
        day = EPOCH + timedelta(days=int(number))
        result.rows_per_day[day] = result.rows_per_day.get(day, 0) + len(chosen)
        _append(staging / day.isoformat(), found, chosen)
    if not placed.all():
        _append(staging / "unplaced", found, index[~placed])
        lines = table.column("_source_line").to_numpy()[~placed]
        result.unplaced.extend((path.as_posix(), int(n)) for n in lines)
    return found.header


def _records(path: Path, source_format: str) -> _Records:
    """The file's records: JSON lines by newline; CSV records by newlines outside double quotes."""
    data = path.read_bytes()
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    if data and not data.endswith(b"\n"):
        data += b"\n"
    buffer = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buffer == ord("\n"))
    if source_format == "csv":
        quotes_before = np.cumsum(buffer == ord('"'))[newlines]
        newlines = newlines[quotes_before % 2 == 0]  # a newline inside a quoted field is not a record's end
    ends = newlines + 1
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    records = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    numbers = np.arange(1, len(ends) + 1, dtype=np.int64)
    if source_format != "csv":
        return _Records(records, numbers, b"")
    blank = np.isin(np.diff(offsets), (1, 2)) & _only_line_end(buffer, offsets)
    kept = np.flatnonzero(~blank)
    header = records[int(kept[0])].as_py() if len(kept) else b""
    data_rows = kept[1:]
    return _Records(records.take(pa.array(data_rows)), np.arange(1, len(data_rows) + 1, dtype=np.int64), header)


def _only_line_end(buffer: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Whether each record of one or two bytes is only a line end (`\\n` or `\\r\\n`)."""
    starts = offsets[:-1]
    first = buffer[np.minimum(starts, len(buffer) - 1)] if len(buffer) else np.zeros(len(starts), np.uint8)
    return np.isin(first, (ord("\n"), ord("\r")))


def _record_index(found: _Records, table: pa.Table, path: Path, source_format: str) -> np.ndarray:
    """The position in `found` of each landed row (by `_source_line`), checked against what the reader saw:
    for CSV the same number of records, and each refused row's text at its place."""
    lines = table.column("_source_line").to_numpy()
    index = lines - 1
    fits = not len(lines) or (lines.min() >= 1 and lines.max() <= len(found.numbers))
    if fits and source_format == "csv":
        refused = pc.is_valid(table.column("_raw_text")).to_numpy(zero_copy_only=False)
        texts = found.records.take(pa.array(index[refused], pa.int64())).to_pylist()
        ours = [t.decode("utf-8", "replace").strip("\r\n") for t in texts]
        fits = len(lines) == len(found.numbers) and ours == table.column("_raw_text").filter(refused).to_pylist()
    if not fits:
        raise ImportRefused(
            f"{path}: its records cannot be told apart for splitting by day (blank lines between refused rows, or "
            "unbalanced quotes?); correct the file, then import again; nothing was imported",
            1,
        )
    return index


def _append(target: Path, found: _Records, chosen: np.ndarray) -> None:
    """Append the chosen records (a CSV header first when the file is new) to a staged file."""
    taken = found.records.take(pa.array(chosen, pa.int64()))
    offsets = np.frombuffer(taken.buffers()[1], dtype=np.int64)[taken.offset : taken.offset + len(taken) + 1]
    data = taken.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]] if len(taken) else b""
    new = not target.exists()
    with target.open("ab") as handle:
        if new and found.header:
            handle.write(found.header)
        handle.write(data)


def _refuse_other_header(headers: dict[Path, bytes]) -> None:
    """CSV files of one export must share their header: their records go under one header per day."""
    (first, header), *_ = headers.items()
    other = next((path for path, h in headers.items() if h.rstrip(b"\r\n") != header.rstrip(b"\r\n")), None)
    if other is not None:
        raise ImportRefused(
            f"{other}: its CSV header differs from the one of {first}; the files of one export must share their "
            "header (import such files one after another into days they do not share); nothing was imported",
            1,
        )


def _refuse_without_days(source: Source, result: ImportResult) -> None:
    if result.rows_per_day:
        return
    if not result.unplaced:
        raise ImportRefused(f"the export holds no {source.name} record; nothing was imported", 1)
    column = canonical_to_source(source)[EVENT_TIME[source.name]]
    shown = ", ".join(f"{file}:{line}" for file, line in result.unplaced[:3])
    raise ImportRefused(
        f"no record of the export has an event time: column {column!r} of source {source.name!r} must be an "
        f"ISO 8601 timestamp with an offset, e.g. 2026-10-01T10:00:00Z (first records: {shown}); map the "
        f"source's timestamp column under `columns` in pyramid.yaml; nothing was imported",
        1,
    )


def _refuse_overwrite(lake: Lake, source: Source, result: ImportResult, replace: bool) -> None:
    landed = [day for day in sorted(result.rows_per_day) if landing_files(lake, source, day)]
    if landed and not replace:
        raise ImportRefused(
            f"{len(landed)} of the export's days already have landing files for source {source.name!r} "
            f"({days_shown(landed)}); "
            "nothing was imported",
            2,
            "import again with --replace to replace those days' landing files",
        )


def _commit(lake: Lake, source: Source, staging: Path, result: ImportResult, replace: bool) -> None:
    """Move each staged day beside its target, rename it onto it; with `replace`, remove the day's other files."""
    for day in sorted(result.rows_per_day):
        target = day_file(lake, source, day)
        others = [p for p in landing_files(lake, source, day) if p.resolve() != target.resolve()] if replace else []
        with atomic_path(target) as tmp:
            shutil.move(staging / day.isoformat(), tmp)
        for other in others:
            other.unlink()
        result.files.append(target)


def _keep_unplaced(lake: Lake, source: Source, staging: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = lake.root / "import" / source.name / f"unplaced-{stamp}.{source.format}"
    with atomic_path(target) as tmp:
        shutil.move(staging / "unplaced", tmp)
    return target
