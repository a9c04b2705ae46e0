"""Erasure: an erasure request removes the user from every layer, history included (DESIGN rule 7).

`erase_users(lake, user_ids)` rewrites, atomically and one partition file at a time, every Parquet file
of the lake that mentions one of the users, without the rows that do; files that mention none are not
touched. A row mentions a user when

- its `user_id` is one of them (every per-user table: actionable events, transactions, profiles,
  user_daily, user_features; segment_membership; audiences; touchpoint exports; goal_user_outcomes;
  raw events, transactions and profiles), or
- it is a quarantined row whose payload's `user_id` is one of them, or
- its raw text (`_raw_text` of a raw row that did not parse, or the payload's `_raw_text`) contains
  one of the ids (ids are compared as substrings: the sample's ids have a fixed width).

A partition stored as a delta (assets/delta_store.py: the daily snapshots and the goal tables) loses the user's
rows like a full one, so that its chain rebuilds every day without them. So does a per-user part that a failed run
left under the data root's scratch folder (`Lake.scratch_files`): a re-run of that day rebuilds its parts anyway.

Kept, by decision:

- `raw/erasure_requests` and `actionable/erased_users`: the request itself is the legal record that
  the erasure was asked for and honoured (it is what later runs erase by);
- aggregates without user ids (segment_summary, segment_overlap, segment_baselines, goal_metrics,
  north_star, north_star_contributions, column_status_*): they hold no personal data. They were
  computed with the user while the user was there and are not recomputed.

The landing files are the feed's delivery area, outside the lake; re-landing an old day reads them
again, which is why the nightly asset also erases every known erased user from the day's own
partitions (see `pipelines/layers/actionable.py`, `erasure_applied`).

Cost: a file is read only where it may mention a user. Its `user_id` column is read only when the file's
index (`assets/user_index.py`: a Parquet Bloom filter on `user_id`, inside the file) may hold one of the ids;
its raw text columns (`payload`, `_raw_text`) only when its footer's statistics show a value. Every other
file costs a footer and a filter read. A day with no erased user reads nothing.

`find_erased(lake, user_ids)` is the proof: the rows of every such file that still mention a user.
Pure functions over the lake: no Dagster.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets import user_index
from assets.lake import Lake, connect, is_local, readable, write_parquet_atomic, write_text_atomic

# the request itself: never rewritten
KEPT = {("raw", "erasure_requests"), ("actionable", "erased_users")}
# columns whose text may hold an id under no column name: matched as text, never skipped by the index
TEXT_COLUMNS = {"payload", "_raw_text"}


def lake_tables(lake: Lake) -> list[tuple[str, str]]:
    """Every (layer, table) folder of the lake, in path order."""
    base = lake.root / "lake"
    if not base.exists():
        return []
    return sorted(
        (layer.name, table.name)
        for layer in base.iterdir()
        if layer.is_dir()
        for table in layer.iterdir()
        if table.is_dir()
    )


def _files(lake: Lake, layer: str, table: str, through: date | None = None, only_day: date | None = None) -> list[Path]:
    if is_local(lake.root):
        files = sorted(lake.table_dir(layer, table).glob("ds=*/part-0.parquet"))
    else:  # one listing of the table, not one per day folder
        files = [lake.partition_file(layer, table, day) for day in lake.partitions(layer, table)]
    return [f for f in files if _day_allowed(date.fromisoformat(f.parent.name.removeprefix("ds=")), through, only_day)]


def erasable_files(
    lake: Lake, through: date | None = None, only_day: date | None = None, include_raw: bool = True
) -> Iterator[tuple[str, list[Path]]]:
    """`layer/table` and its partition files, for every table of the lake but the request records (`KEPT`); then
    `scratch/<step>` and the per-user parts a failed run left there (none after a finished run)."""
    for layer, table in lake_tables(lake):
        if (layer, table) not in KEPT and (layer != "raw" or include_raw):
            yield f"{layer}/{table}", _files(lake, layer, table, through, only_day)
    by_step: dict[str, list[Path]] = {}
    for path in lake.scratch_files():
        if _day_allowed(date.fromisoformat(path.parent.parent.name.removeprefix("ds=")), through, only_day):
            by_step.setdefault(f"scratch/{path.parent.parent.parent.name}", []).append(path)
    yield from sorted(by_step.items())


def _day_allowed(day: date, through: date | None, only_day: date | None) -> bool:
    return (through is None or day <= through) and (only_day is None or day == only_day)


def id_pattern(user_ids: Iterable[str]) -> str:
    """An RE2 pattern (DuckDB's and Arrow's regex engine) matching any of `user_ids` as a substring: one
    pass over a text, however many ids. Every character but a letter or digit is written `\\x{hex}`, so
    an id never reads as regex syntax nor as SQL quoting."""
    return "|".join(
        "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in u)
        for u in sorted({u for u in user_ids if u})
    )


def mention_predicate(columns: Iterable[str], pattern: str) -> str | None:
    """SQL that is true for a row mentioning a user of the registered table `_erase_ids(user_id)`, the
    text columns matched by `pattern` (`id_pattern` of the same ids); None when a table with these
    columns cannot hold a user id (an aggregate)."""
    columns = set(columns)
    terms = []
    if "user_id" in columns:
        terms.append("user_id IN (SELECT user_id FROM _erase_ids)")
    if "payload" in columns:
        terms.append("json_extract_string(payload, '$.user_id') IN (SELECT user_id FROM _erase_ids)")
        terms.append(f"regexp_matches(json_extract_string(payload, '$._raw_text'), '{pattern}')")
    if "_raw_text" in columns:
        terms.append(f"regexp_matches(_raw_text, '{pattern}')")
    return " OR ".join(f"coalesce({t}, false)" for t in terms) if terms else None


def _ids_table(user_ids: Iterable[str]) -> pa.Table:
    ids = sorted({u for u in user_ids if u is not None and u != ""})
    return pa.table({"user_id": pa.array(ids, pa.string())})


def _mentions_per_file(
    con: duckdb.DuckDBPyConnection, files: list[Path], pattern: str, hashes: np.ndarray
) -> dict[Path, int]:
    """For files of one table: how many rows of each mention an erased user (only files with some).
    Files whose index (`user_index.may_hold`) rules the ids out are not read for `user_id`; those
    without a text column to match besides are not read at all. DuckDB reads only the columns the
    predicate names."""
    found: dict[Path, int] = {}
    for columns, group in _files_to_read(files, hashes).items():
        predicate = mention_predicate(columns, pattern)
        rows = con.sql(
            f"SELECT filename, count(*) FROM read_parquet(?, filename = true, union_by_name = true) "
            f"WHERE {predicate} GROUP BY filename",
            params=[[str(f) for f in group]],
        ).fetchall()
        by_name = {str(f): f for f in group}  # an object-store path is no `Path`
        found |= {by_name.get(name, Path(name)): int(n) for name, n in rows}
    return found


def _files_to_read(files: list[Path], hashes: np.ndarray) -> dict[tuple[str, ...], list[Path]]:
    """The files that may mention one of the users, grouped by the columns that must be read to know:
    `user_id` only where the file's index may hold an id, the raw text columns (a payload, a line that
    did not parse) wherever they have a value. Reads footers and Bloom filters only."""
    groups: dict[tuple[str, ...], list[Path]] = {}
    for path in files:
        metadata = pq.read_metadata(readable(path))
        names = set(metadata.schema.to_arrow_schema().names)
        columns = {c for c in names & TEXT_COLUMNS if not all_null(metadata, c)}
        if "user_id" in names and user_index.may_hold(path, hashes, metadata):
            columns.add("user_id")
        if columns:
            groups.setdefault(tuple(sorted(columns)), []).append(path)
    return groups


def all_null(metadata: pq.FileMetaData, column: str) -> bool:
    """Whether the footer's statistics show every value of `column` is NULL (a file whose records all parsed)."""
    index = metadata.schema.to_arrow_schema().names.index(column)
    for group in range(metadata.num_row_groups):
        chunk = metadata.row_group(group).column(index)
        if not chunk.is_stats_set or chunk.statistics.null_count != chunk.num_values:
            return False
    return True


def find_erased(
    lake: Lake,
    user_ids: Iterable[str],
    through: date | None = None,
    include_raw: bool = True,
    only_day: date | None = None,
) -> dict[str, int]:
    """`layer/table` -> rows that still mention one of `user_ids` (tables without any are left out),
    in every partition up to `through`, or only in the partitions of `only_day`."""
    ids = _ids_table(user_ids)
    if ids.num_rows == 0:
        return {}
    pattern = id_pattern(ids.column("user_id").to_pylist())
    hashes = user_index.id_hashes(ids.column("user_id").to_pylist())
    con = connect()
    con.register("_erase_ids", ids)
    try:
        found = {}
        for table, files in erasable_files(lake, through, only_day, include_raw):
            n = sum(_mentions_per_file(con, files, pattern, hashes).values())
            if n:
                found[table] = n
        return found
    finally:
        con.unregister("_erase_ids")


def erase_users(
    lake: Lake, user_ids: Iterable[str], through: date | None = None, only_day: date | None = None
) -> dict[str, int]:
    """Rewrite every partition file (up to `through`, or only the one of `only_day`) that mentions one
    of `user_ids` without those rows; return `layer/table` -> rows removed (tables with none left out).

    Each file is rewritten on its own (temporary name, then rename), keeping the order of the rows
    kept, so that the result equals a file written without those users. Running it again removes
    nothing."""
    ids = _ids_table(user_ids)
    if ids.num_rows == 0:
        return {}
    con = connect()
    con.register("_erase_ids", ids)
    try:
        removed: dict[str, int] = {}
        erased = set(ids.column("user_id").to_pylist())
        pattern, hashes = id_pattern(erased), user_index.id_hashes(erased)
        for table, files in erasable_files(lake, through, only_day):
            for path, n in sorted(_mentions_per_file(con, files, pattern, hashes).items()):
                _rewrite_without(con, path, pattern)
                removed[table] = removed.get(table, 0) + n
            for path in _csv_copies(files):
                _rewrite_csv_without(path, erased)
        return removed
    finally:
        con.unregister("_erase_ids")


def _csv_copies(files: list[Path]) -> list[Path]:
    """CSV copies beside the partitions' Parquet files (exports a touchpoint asks for as CSV)."""
    return sorted(csv_path for folder in {f.parent for f in files} for csv_path in folder.glob("*.csv"))


def _rewrite_csv_without(path: Path, user_ids: set[str]) -> None:
    """Rewrite a CSV copy without the rows of `user_ids` (its `user_id` column), written as it was
    (Python's csv writer, `\\n` line ends: assets/exports.py `csv_text`); untouched when none is there."""
    text = path.read_text()
    if not any(u in text for u in user_ids):  # most copies mention nobody: no parse
        return
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or "user_id" not in rows[0]:
        return
    column = rows[0].index("user_id")
    kept = [rows[0], *(row for row in rows[1:] if row[column] not in user_ids)]
    if len(kept) == len(rows):
        return
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(kept)
    write_text_atomic(buffer.getvalue(), path)


def _rewrite_without(con: duckdb.DuckDBPyConnection, path: Path, pattern: str) -> None:
    table = pq.read_table(readable(path))
    predicate = mention_predicate(table.column_names, pattern)
    con.register("_erase_file", table.append_column("_erase_row", pa.array(range(table.num_rows), pa.int64())))
    try:
        keep = (
            con.sql(f"SELECT NOT ({predicate}) AS keep FROM _erase_file ORDER BY _erase_row")
            .to_arrow_table()
            .column("keep")
        )
    finally:
        con.unregister("_erase_file")
    write_parquet_atomic(table.filter(keep), path)
