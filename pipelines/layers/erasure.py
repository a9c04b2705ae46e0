"""Erasure in Dagster: which users to erase on a day, and the check that proves they are gone.
The rewriting itself is `assets/erasure.py`.

The proof is independent of the deletion: it does not use `mention_predicate` (SQL over known columns)
but reads every Parquet file of the lake with pyarrow and looks for each erased id as a substring of
every text column, whatever the column is called (a user id, a quarantined payload, a raw line)."""

import re
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets import erasure
from assets.lake import Lake, connect, read_partition

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


def erasure_check(lake: Lake, ds: date, erased: list[str], new: list[str]) -> dg.AssetCheckResult:
    """Scan the day's files for every erased user, and the whole lake for the users whose request is
    new today (the request records excepted). Earlier days were proven clean by earlier runs, so the
    nightly cost does not grow with history except on days with new requests."""
    found = scan_for_ids(lake, erased, only_day=ds)
    for table, n in (scan_for_ids(lake, new) if new else {}).items():
        found[table] = max(found.get(table, 0), n)
    return dg.AssetCheckResult(
        check_name=ERASURE_CHECK,
        passed=not found,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "erased_users": len(erased),
            "files_scanned": len(lake_files(lake)),
            "found": ", ".join(f"{t}: {n} rows" for t, n in found.items()) or "none",
        },
        description=("erased users still found in " + ", ".join(f"{t} ({n} rows)" for t, n in found.items()))
        if found
        else "no erased user in any file of the lake",
    )


def lake_files(lake: Lake, only_day: date | None = None) -> list[Path]:
    """Every Parquet file of the lake (of `only_day`'s partitions only, when given), the request records
    (`erasure.KEPT`) excepted."""
    base = lake.root / "lake"
    files = sorted(base.glob("*/*/**/*.parquet")) if base.exists() else []
    files = [f for f in files if tuple(f.relative_to(base).parts[:2]) not in erasure.KEPT]
    if only_day is not None:
        files = [f for f in files if f"ds={only_day.isoformat()}" in f.parts]
    return files


def scan_for_ids(lake: Lake, user_ids: list[str], only_day: date | None = None) -> dict[str, int]:
    """`layer/table` -> rows of its files in which some text column contains one of `user_ids`."""
    ids = sorted({u for u in user_ids if u})
    if not ids:
        return {}
    pattern = "|".join(re.escape(u) for u in ids)
    found: dict[str, int] = {}
    for path in lake_files(lake, only_day):
        n = _rows_mentioning(pq.read_table(path), pattern)
        if n:
            table = "/".join(path.relative_to(lake.root / "lake").parts[:2])
            found[table] = found.get(table, 0) + n
    return found


def _rows_mentioning(table: pa.Table, pattern: str) -> int:
    text = [
        c
        for c, t in zip(table.column_names, table.schema.types)
        if pa.types.is_string(t) or pa.types.is_large_string(t)
    ]
    hits = None
    for column in text:
        match = pc.fill_null(pc.match_substring_regex(table.column(column), pattern), False)
        hits = match if hits is None else pc.or_(hits, match)
    return 0 if hits is None else int(pc.sum(hits).as_py() or 0)
