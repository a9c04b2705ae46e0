"""Erasure in Dagster: which users to erase on a day, and the check that proves they are gone.
The rewriting itself is `assets/erasure.py`.

The proof is independent of the deletion: it does not use `mention_predicate` (SQL over known columns)
but reads every Parquet file of the lake with pyarrow and looks for each erased id as a substring of
every text column, whatever the column is called (a user id, a quarantined payload, a raw line).
It trusts one thing the deletion also reads: a file whose `user_id` Bloom filter (assets/user_index.py,
written by pyarrow with the rows) rules every id out, and that has no raw text, is not scanned; the filter
has no false negatives, so that only leaves out an id hidden in another column of such a file.

Speed: a column's values lie back to back in one Arrow data buffer, so one regex pass over that buffer
(no per-value call) tells whether any value can contain an id; only a column whose buffer matches is
matched value by value (a match across two values is a false alarm the second pass clears). On a day
whose files hold no erased user that is one pass per text column, after reading the text columns."""

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets import erasure, user_index
from assets.lake import Lake, connect, read_partition, readable

ERASURE_CHECK = "erased_users_absent"


def erasure_sets(lake: Lake, ds: date, start: date) -> tuple[list[str], list[str]]:
    """(every user known to be erased, those whose request is new on `ds`).

    Known to be erased: the erased users as of `ds` and as of the latest materialized day, so that
    re-running an old day (which re-lands its raw rows from the landing files) never brings back a user
    erased since. New on `ds`: in the erased users of `ds` but not of the day before (all of them on
    the first day, or when that partition is missing)."""
    con = connect()

    def erased_on(day: date) -> set:
        return set(
            read_partition(con, lake.partition_file("actionable", "erased_users", day)).column("user_id").to_pylist()
        )

    as_of = erased_on(ds)
    known = set(as_of)
    days = lake.partitions("actionable", "erased_users")
    if days and days[-1] > ds:
        known |= erased_on(days[-1])
    previous = ds - timedelta(days=1)
    before = erased_on(previous) if ds > start and lake.has_partition("actionable", "erased_users", previous) else set()
    known.discard(None)
    return sorted(known), sorted(u for u in as_of - before if u is not None)


def apply_erasure(lake: Lake, ds: date, start: date) -> dg.MaterializeResult:
    """The body of `erasure_applied`: erase every known erased user from the day's partitions, and the
    users whose request is new today from every partition, then prove it (`erasure_check`). A day on
    which nobody is erased reads the request records only."""
    erased, new = erasure_sets(lake, ds, start)
    removed_today = erasure.erase_users(lake, erased, only_day=ds)
    removed_history = erasure.erase_users(lake, new) if new else {}
    return dg.MaterializeResult(
        metadata={
            "erased_users": len(erased),
            "new_requests": len(new),
            "removed_today": dg.MetadataValue.json(removed_today),
            "removed_from_history": dg.MetadataValue.json(removed_history),
            "rows_removed": sum(removed_today.values()) + sum(removed_history.values()),
        },
        check_results=[erasure_check(lake, ds, erased, new)],
    )


def erasure_check(lake: Lake, ds: date, erased: list[str], new: list[str]) -> dg.AssetCheckResult:
    """Scan the day's files for every erased user, and the whole lake for the users whose request is
    new today (the request records excepted), skipping the files the index rules out (`unindexed`).
    Earlier days were proven clean by earlier runs, so the nightly cost does not grow with history
    except on days with new requests."""
    scanned = unindexed(lake_files(lake, only_day=ds), erased)
    found = scan_for_ids(lake, erased, files=scanned)
    if new:
        scanned = unindexed(lake_files(lake), new)
        for table, n in scan_for_ids(lake, new, files=scanned).items():
            found[table] = max(found.get(table, 0), n)
    return dg.AssetCheckResult(
        check_name=ERASURE_CHECK,
        passed=not found,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "erased_users": len(erased),
            "files_scanned": len(scanned),
            "found": ", ".join(f"{t}: {n} rows" for t, n in found.items()) or "none",
        },
        description=("erased users still found in " + ", ".join(f"{t} ({n} rows)" for t, n in found.items()))
        if found
        else "no erased user in any file of the lake",
    )


def unindexed(files: list[Path], user_ids: list[str]) -> list[Path]:
    """The files whose index cannot rule out `user_ids`: its `user_id` filter may hold one, it has no
    `user_id` column to index (an aggregate, a quarantine), or a raw text column has a value. Reads footers
    and filters only; none when there is no id."""
    hashes = user_index.id_hashes(user_ids)
    if len(hashes) == 0:
        return []
    kept = []
    for path in files:
        metadata = pq.read_metadata(readable(path))
        names = set(metadata.schema.to_arrow_schema().names)
        raw_text = any(not erasure.all_null(metadata, c) for c in names & erasure.TEXT_COLUMNS)
        if "user_id" not in names or raw_text or user_index.may_hold(path, hashes, metadata):
            kept.append(path)
    return kept


def lake_files(lake: Lake, only_day: date | None = None) -> list[Path]:
    """Every Parquet file of the lake (of `only_day`'s partitions only, when given), the request records
    (`erasure.KEPT`) excepted, and the scratch parts a failed run left."""
    base = lake.root / "lake"
    files = sorted(base.glob("*/*/**/*.parquet")) if base.exists() else []
    files = [f for f in files if tuple(f.relative_to(base).parts[:2]) not in erasure.KEPT]
    files += lake.scratch_files()
    if only_day is not None:
        files = [f for f in files if f"ds={only_day.isoformat()}" in f.parts]
    return files


def _table_of(lake: Lake, path: Path) -> str:
    """`layer/table` of a lake file, `scratch/<step>` of a scratch part."""
    if path.is_relative_to(lake.scratch):
        return f"scratch/{path.relative_to(lake.scratch).parts[0]}"
    return "/".join(path.relative_to(lake.root / "lake").parts[:2])


def scan_for_ids(
    lake: Lake, user_ids: list[str], only_day: date | None = None, files: list[Path] | None = None
) -> dict[str, int]:
    """`layer/table` -> rows of its files in which some text column contains one of `user_ids`; the
    files are `files`, else those of `lake_files(lake, only_day)`. Only the text columns are read."""
    ids = sorted({u for u in user_ids if u})
    if not ids:
        return {}
    pattern = "|".join(_literal(u) for u in ids)
    found: dict[str, int] = {}
    for path in lake_files(lake, only_day) if files is None else files:
        schema = pq.read_schema(readable(path))
        text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        n = _rows_mentioning(pq.read_table(readable(path), columns=text), pattern) if text else 0
        if n:
            table = _table_of(lake, path)
            found[table] = found.get(table, 0) + n
    return found


def _literal(text: str) -> str:
    """`text` as an RE2 literal, by its own quoting (`\\Q...\\E`), not the deletion's `id_pattern`."""
    return "\\Q" + text.replace("\\E", "\\E\\\\E\\Q") + "\\E"


def _rows_mentioning(table: pa.Table, pattern: str) -> int:
    hits = None
    for column in table.columns:
        if not any(_buffer_matches(chunk, pattern) for chunk in column.chunks):
            continue
        match = pc.fill_null(pc.match_substring_regex(column, pattern), False)
        hits = match if hits is None else pc.or_(hits, match)
    return 0 if hits is None else int(pc.sum(hits).as_py() or 0)


def _buffer_matches(chunk: pa.Array, pattern: str) -> bool:
    """Whether `pattern` matches anywhere in the chunk's value bytes, taken as one text: never
    false when a value matches (values are stored back to back), rarely true when none does."""
    data = chunk.buffers()[2]
    if data is None or data.size == 0:
        return False
    offsets = pa.array([0, data.size], pa.int64()).buffers()[1]
    whole = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, data])  # UTF-8 values: UTF-8 bytes
    return bool(pc.any(pc.match_substring_regex(whole, pattern)).as_py())
