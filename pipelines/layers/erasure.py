"""Erasure in Dagster: which users to erase on a day, and the check that proves they are gone.
The rewriting itself is `assets/erasure.py`."""

from datetime import date, timedelta

import dagster as dg

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
        return set(read_partition(con, lake.partition_file("actionable", "erased_users", day)).column("user_id").to_pylist())

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
    found = erasure.find_erased(lake, erased, only_day=ds)
    for table, n in (erasure.find_erased(lake, new) if new else {}).items():
        found[table] = max(found.get(table, 0), n)
    return dg.AssetCheckResult(
        check_name=ERASURE_CHECK, passed=not found, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"erased_users": len(erased), "tables_scanned": len(erasure.lake_tables(lake)),
                  "found": ", ".join(f"{t}: {n} rows" for t, n in found.items()) or "none"},
        description=("erased users still found in " + ", ".join(f"{t} ({n} rows)" for t, n in found.items()))
        if found else "no erased user in any file of the lake",
    )
