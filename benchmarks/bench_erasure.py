"""Benchmark of erasure on a materialized lake: a day without new requests, and a day with some.

It copies the lake of a data root (one that `pyramid run` or `bench_nightly.py --keep` left), widens its
history by copying the last day's partitions to `--history-days` earlier days (same files, other dates),
and rewrites every file with the lake's writer (so each carries the index the code in use writes). Then,
on fresh copies, it times what `erasure_applied` does (pipelines/layers/erasure.py):

- no new request: the users of the latest `actionable/erased_users` partition are known to be erased
  (absent from every file, as after their day), none is new: the day's files are cleaned and checked;
- `--new` new requests: as many users of the day's actionable events ask to be erased: their rows are
  removed from every partition of every layer, and the whole lake is checked for them.

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


def timed(lake: Lake, ds: date, erased: list[str], new: list[str]) -> tuple[float, float, int, bool]:
    """(seconds erasing, seconds checking, rows removed, check passed), as `erasure_applied` runs them."""
    began = time.perf_counter()
    removed = erasure.erase_users(lake, erased, only_day=ds)
    if new:
        removed |= {f"history {k}": v for k, v in erasure.erase_users(lake, new).items()}
    erased_at = time.perf_counter()
    check = erasure_check(lake, ds, erased, new)
    return erased_at - began, time.perf_counter() - erased_at, sum(removed.values()), check.passed


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
        known = read_partition(con, base.partition_file("actionable", "erased_users", ds)).column("user_id")
        present = read_partition(con, base.partition_file("actionable", "events", ds)).column("user_id")
        asking = sorted({u for u in present.to_pylist() if u})[:: max(1, len(present) // (args.new * 50))][: args.new]
        print(f"lake: {files} files, {size / 2**20:,.0f} MiB, {args.history_days + 1} days; day {ds}")
        print("case | erase s | check s | rows removed | check passed")
        for name, erased, new in (
            ("no new request", [u for u in known.to_pylist() if u], []),
            (f"{len(asking)} new requests", sorted({*known.to_pylist(), *asking} - {None}), asking),
        ):
            copy = Path(tmp) / name.replace(" ", "_")
            shutil.copytree(base.root, copy)
            erase_s, check_s, rows, passed = timed(Lake(copy), ds, erased, new)
            print(f"{name} | {erase_s:.2f} | {check_s:.2f} | {rows:,} | {passed}")
            shutil.rmtree(copy)


if __name__ == "__main__":
    main()
