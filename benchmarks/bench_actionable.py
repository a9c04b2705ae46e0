"""Benchmark of the bottom of the pyramid on one synthetic landing day.

Synthesizes (numpy + polars, a few seconds) an events JSONL day-file of 1M rows with mixed UTC offsets,
0.5% duplicates and 0.01% broken lines, plus the event ids of 7 lookback days (7M, 0.1% of the day's
ids among them), then times raw.land, actionable.clean_events (with that lookback) and
measures.user_daily, and features.user_features over 90 days of daily rows (the day's, repeated), and
prints a table.

    /tmp/venv-probe/bin/python benchmarks/bench_actionable.py [--rows 1000000] [--users 50000]
    /tmp/venv-probe/bin/python benchmarks/bench_actionable.py --measures [--measure-users 200000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assets import actionable, features, measures, raw  # noqa: E402
from assets.lake import Lake, connect  # noqa: E402
from assets.pyramid_map import load_map  # noqa: E402

DS = date(2026, 10, 1)
EVENT_TYPES = list(actionable.EVENT_TYPES)
EVENT_WEIGHTS = [0.10, 0.30, 0.25, 0.10, 0.10, 0.08, 0.04, 0.02, 0.01]
FEATURES = ["budget_tool", "savings_goal", "card_controls"]
OFFSETS = [("Z", 0), ("+02:00", 120), ("-05:00", -300), ("+05:30", 330)]


def synthesize_events(rows: int, users: int, seed: int = 7) -> pl.DataFrame:
    """One JSON line per row; ~0.5% duplicates of earlier lines, ~0.01% broken lines."""
    rng = np.random.default_rng(seed)
    start = datetime(DS.year, DS.month, DS.day, tzinfo=UTC)
    seconds = rng.integers(0, 86_400, rows)
    offset_index = rng.integers(0, len(OFFSETS), rows)
    suffixes = np.array([o[0] for o in OFFSETS])[offset_index]
    offset_minutes = np.array([o[1] for o in OFFSETS])[offset_index]
    types = np.array(EVENT_TYPES)[rng.choice(len(EVENT_TYPES), rows, p=EVENT_WEIGHTS)]
    local_seconds = int(start.timestamp()) + seconds + offset_minutes * 60  # wall clock at the offset
    local = pl.Series(local_seconds * 1_000_000).cast(pl.Datetime("us"))
    frame = pl.DataFrame(
        {
            "event_id": pl.Series(np.arange(rows)).cast(pl.String),
            "user_id": pl.Series(rng.integers(0, users, rows)).cast(pl.String),
            "event_type": types,
            "local": local,
            "suffix": suffixes,
            "session": pl.Series(rng.integers(0, users * 3, rows)).cast(pl.String),
            "feature": np.array(FEATURES)[rng.integers(0, len(FEATURES), rows)],
        }
    )
    line = pl.concat_str(
        [
            pl.lit('{"event_id":"e'),
            pl.col("event_id"),
            pl.lit('","user_id":"u'),
            pl.col("user_id"),
            pl.lit('","event_type":"'),
            pl.col("event_type"),
            pl.lit('","occurred_at":"'),
            pl.col("local").dt.strftime("%Y-%m-%dT%H:%M:%S"),
            pl.col("suffix"),
            pl.lit('","session_id":"s'),
            pl.col("session"),
            pl.lit('","channel":"app","campaign_id":null,"touchpoint_id":null,"properties":'),
            pl.when(pl.col("event_type") == "feature_use")
            .then(pl.concat_str([pl.lit('{"feature":"'), pl.col("feature"), pl.lit('"}')]))
            .otherwise(pl.lit("{}")),
            pl.lit("}"),
        ]
    )
    lines = frame.select(line.alias("line"))
    duplicates = lines.sample(fraction=0.005, seed=seed)
    broken = pl.DataFrame({"line": ['{"event_id": "broken'] * max(1, rows // 10_000)})
    return pl.concat([lines, duplicates, broken]).sample(fraction=1.0, shuffle=True, seed=seed)


def write_day(root: Path, lines: pl.DataFrame) -> Path:
    folder = root / "landing" / "events" / DS.isoformat()
    folder.mkdir(parents=True)
    path = folder / "events-0.jsonl"
    path.write_text(lines.get_column("line").str.join("\n").item() + "\n")
    return path


def lookback_ids(rows: int, days: int, seed: int = 7) -> pa.Table:
    """Event ids accepted in the lookback partitions: `days` earlier days of `rows` ids each, 0.1% of
    which are redelivered in the benchmark day (the day's ids are e0 .. e<rows-1>)."""
    earlier = pl.Series(np.arange(rows, rows * (days + 1))).cast(pl.String)
    redelivered = pl.Series(np.random.default_rng(seed).choice(rows, rows // 1000, replace=False)).cast(pl.String)
    ids = pl.DataFrame({"n": pl.concat([earlier, redelivered])}).select((pl.lit("e") + pl.col("n")).alias("event_id"))
    return ids.to_arrow()


def history(daily: pa.Table, days: int) -> pa.Table:
    """`days` copies of one day's user_daily, one per activity date ending on DS (a window's worth)."""
    day_numbers = pc.cast(daily.column("activity_date"), pa.int32())
    copies = []
    for back in range(days):
        shifted = pc.cast(pc.subtract(day_numbers, pa.scalar(back, pa.int32())), pa.date32())
        copies.append(daily.set_column(daily.schema.get_field_index("activity_date"), "activity_date", shifted))
    return pa.concat_tables(copies)


def timed(results: list, label: str, fn, rows_in: int | None = None):
    """Run `fn`, recording wall seconds and CPU seconds (all threads; a busy machine inflates wall only)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    value = fn()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    results.append((label, rows_in if rows_in is not None else value.num_rows, seconds, cpu))
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument(
        "--measures",
        action="store_true",
        help="instead: user_daily from the declared measures against the hand-written statement they replaced "
        "(benchmarks/bench_measures.py), at --measure-users",
    )
    parser.add_argument("--measure-users", type=int, default=200_000)
    args = parser.parse_args()
    if args.measures:
        from bench_measures import compare

        compare(args.measure_users, repeat=3)
        return
    pyramid = load_map()
    settings, windows = pyramid.actionable, list(pyramid.segments.windows)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        path = write_day(root, synthesize_events(args.rows, args.users))
        seen = lookback_ids(args.rows, settings.dedup_lookback_days)
        print(
            f"synthesized {path.stat().st_size / 1e6:.0f} MB of events and {seen.num_rows:,} lookback ids "
            f"in {time.perf_counter() - started:.1f} s"
        )
        users = pa.table({"user_id": pa.array([f"u{i}" for i in range(args.users)])})
        profiles = pa.table(
            {
                "user_id": users.column("user_id"),
                "signup_at": pa.array([datetime(2025, 1, 1, tzinfo=UTC)] * args.users, pa.timestamp("us", tz="UTC")),
                "country": ["FR"] * args.users,
                "birth_year": pa.array([1990] * args.users, pa.int32()),
                "plan": ["basic"] * args.users,
                "consent_personalization": [True] * args.users,
            }
        )
        con = connect()
        results: list = []
        landed = timed(results, "raw.land", lambda: raw.land(con, Lake(root), pyramid.sources["events"], DS))
        cleaned = timed(
            results,
            "actionable.clean_events",
            lambda: actionable.clean_events(con, landed, DS, users, seen, settings),
            landed.num_rows,
        )
        daily = timed(
            results,
            "measures.user_daily",
            lambda: measures.user_daily(con, pyramid, cleaned.table, actionable.empty_table("transactions")),
            cleaned.table.num_rows,
        )
        window = history(daily, max(windows))
        feats = timed(
            results,
            "features.user_features",
            lambda: features.user_features(con, pyramid, window, profiles, None, DS, windows),
            window.num_rows,
        )
    print()
    print(f"{'step':<26}{'rows in':>12}{'seconds':>10}{'cpu s':>8}{'rows/s':>14}")
    for label, rows_in, seconds, cpu in results:
        print(f"{label:<26}{rows_in:>12,}{seconds:>10.2f}{cpu:>8.2f}{rows_in / seconds:>14,.0f}")
    print(f"({os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f})")
    print()
    print("clean_events accounting:", cleaned.accounting())
    print("duplicates:", {k: cleaned.details[k] for k in ("duplicates_within_partition", "duplicates_of_lookback")})
    print(
        f"user_daily rows: {daily.num_rows:,}; user_features: {feats.num_rows:,} users x {feats.num_columns} columns "
        f"from {window.num_rows:,} daily rows ({max(windows)} days)"
    )


if __name__ == "__main__":
    main()
