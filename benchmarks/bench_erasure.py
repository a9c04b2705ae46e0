"""Benchmark of erasure on a materialized lake: a day without new requests, and a day with some.

It copies the lake of a data root (one that `pyramid run` or `bench_nightly.py --keep` left), widens its
history by copying the last day's partitions to `--history-days` earlier days (same files, other dates),
and rewrites every file with the lake's writer (so each carries the index the code in use writes). Then,
on fresh copies, it times what `erasure_applied` does (pipelines/layers/erasure.py):

- no new request: the users of the latest `actionable/erased_users` partition are known to be erased
  (absent from every file, as after their day), none is new: the day's files are cleaned and checked;
- `--new` new requests from users of the last day's actionable events (so of every copied day): their rows
  are removed from every partition of every layer, and the whole lake is checked for them;
- `--new` new requests from users of the earliest day's events who are not in the last day's: only that
  day's daily tables and the cumulative ones (features, cohorts, segments) mention them.

Each case prints the files rewritten (by modification time) against all the lake's files.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_erasure.py DATA_ROOT [--history-days 30] [--new 8]

Run it with another checkout first on PYTHONPATH to time that checkout's code on the same lake.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from assets import erasure
from assets.lake import Lake, connect, read_partition, write_parquet_atomic
from pipelines.layers.erasure import erasure_check


def widened(source: Path, work: Path, history_days: int) -> tuple[Lake, date]:
    """A copy of `source`'s lake with the last day's partitions copied to `history_days` earlier days, every
    file rewritten by the lake's writer; (the copy, the last day)."""
    shutil.copytree(source / "lake", work / "lake")
    last = max(date.fromisoformat(p.name[3:]) for p in (work / "lake").glob("*/*/ds=*"))
    for folder in sorted((work / "lake").glob(f"*/*/ds={last.isoformat()}")):
        for k in range(1, history_days + 1):
            target = folder.with_name(f"ds={(last - timedelta(days=k)).isoformat()}")
            if not target.exists():
                shutil.copytree(folder, target)
    for path in sorted((work / "lake").rglob("*.parquet")):
        write_parquet_atomic(pq.read_table(path, partitioning=None), path)
    return Lake(work), last


def timed(lake: Lake, ds: date, erased: list[str], new: list[str]) -> tuple[float, float, float, int, bool]:
    """(seconds erasing, seconds checking, CPU seconds of both, rows removed, check passed), as
    `erasure_applied` runs them."""
    began, cpu = time.perf_counter(), time.process_time()
    removed = erasure.erase_users(lake, erased, only_day=ds)
    if new:
        removed |= {f"history {k}": v for k, v in erasure.erase_users(lake, new).items()}
    erased_at = time.perf_counter()
    check = erasure_check(lake, ds, erased, new)
    done = time.perf_counter()
    return erased_at - began, done - erased_at, time.process_time() - cpu, sum(removed.values()), check.passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a data root with a materialized lake")
    parser.add_argument("--history-days", type=int, default=30)
    parser.add_argument("--new", type=int, default=8, help="users asking to be erased on the request day")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-erasure-") as tmp:
        base, ds = widened(args.root, Path(tmp) / "base", args.history_days)
        files = len(list((base.root / "lake").rglob("*.parquet")))
        size = sum(p.stat().st_size for p in (base.root / "lake").rglob("*.parquet"))
        con = connect()
        erased_file = base.partition_file("actionable", "erased_users", ds)
        known = sorted(u for u in read_partition(con, erased_file).column("user_id").to_pylist() if u)
        present = _users(con, base, ds)
        days = (args.root / "lake" / "actionable" / "events").glob("ds=*")
        earliest = min(date.fromisoformat(p.name[3:]) for p in days)  # the earliest real day, not a copy
        everywhere, early_only = _pick(present, args.new), _pick(_users(con, base, earliest) - present, args.new)
        print(f"lake: {files} files, {size / 2**20:,.0f} MiB, {args.history_days + 1} days; day {ds}")
        print("case | erase s | check s | CPU s | rows removed | files rewritten | check passed")
        for name, new in (
            ("no new request", []),
            (f"{len(everywhere)} new requests, users in every day", everywhere),
            (f"{len(early_only)} new requests, users of {earliest} only", early_only),
        ):
            copy = Path(tmp) / name.replace(" ", "_").replace(",", "")
            shutil.copytree(base.root, copy)
            before = _mtimes(copy)
            erase_s, check_s, cpu_s, rows, passed = timed(Lake(copy), ds, sorted({*known, *new}), new)
            rewritten = sum(1 for path, mtime in _mtimes(copy).items() if before.get(path) != mtime)
            times = f"{erase_s:.2f} | {check_s:.2f} | {cpu_s:.2f}"
            print(f"{name} | {times} | {rows:,} | {rewritten:,} of {files:,} | {passed}")
            shutil.rmtree(copy)


def _users(con, lake: Lake, ds: date) -> set[str]:
    """The users of a day's actionable events."""
    events = read_partition(con, lake.partition_file("actionable", "events", ds))
    return {u for u in events.column("user_id").to_pylist() if u}


def _pick(users: set[str], n: int) -> list[str]:
    """`n` users spread over the sorted ids (deterministic)."""
    ordered = sorted(users)
    return ordered[:: max(1, len(ordered) // max(1, n * 50))][:n]


def _mtimes(root: Path) -> dict[Path, int]:
    return {p.relative_to(root): p.stat().st_mtime_ns for p in (root / "lake").rglob("*") if p.is_file()}


if __name__ == "__main__":
    main()
