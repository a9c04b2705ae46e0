"""The daily snapshot tables of the lake (user_features, profiles, marketing_consent, channel_suppressions,
audiences) stored with assets/delta_store.py: the newest day in full, each older day a delta on the day after it
(its base) with only the cells that changed, except where a chain of deltas has grown as large as a full day.

A snapshot is one row per user (or per campaign and user, per user and channel) a day, and most rows change nothing
from one day to the next but a few counters (a `days since` grows with the gap: the `shift` of the move); the
cumulative channel_suppressions of the day before is the day's table without the day's new rows. When day d is
written in full, the day before is rewritten as a delta on d: it holds the cells d's rows, moved back a day, do not
give, the rows d no longer has, and it is kept only when it rebuilds the day before exactly.

Which days stay full follows activity, not the calendar: a delta records the cells of the chain it ends (`chain`:
its own and those of the deltas below it, down to a full day), and the day before stays full when its chain would
hold as many cells as the day's own table. Any day then reads one full table and deltas of fewer cells than it
(`apply_deltas`: one pass, whatever the chain's length), and storage grows with the changes, not days x users. The
program's first day stays full too: a query over all of a table's files takes its columns from the first one. The
rule reads only what is stored below the day, so writing the same days in the same order writes the same files.
Before a day is rewritten (a re-run), the day before it, a delta on it, is first stored in full; the days above it
keep their deltas (their `chain` may then count more than is left below, which only keeps a day full sooner).
`read_day` rebuilds any day, as `read_partition` reads a full one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from assets.delta_store import (
    DeltaLayout,
    apply_deltas,
    delta_moves,
    is_delta,
    stored_cells,
    table_delta,
    with_moves,
)
from assets.lake import Lake, connect, projected, read_partition, readable, write_parquet_atomic


def shifted(base: pl.DataFrame, moves: Mapping[str, Any]) -> pl.DataFrame:
    """The base's rows moved to the delta's day: each `shift` column plus the gap in days (NULL stays NULL), each
    `set` column the day's value."""
    gap = moves.get("gap", 0)
    exprs = [pl.col(c) + gap for c in moves.get("shift", [])]
    exprs += [pl.lit(v).cast(base.schema[c]).alias(c) for c, v in moves.get("set", {}).items()]
    return base.with_columns(exprs) if exprs else base


def shift_moves(shift: Sequence[str], constant: Sequence[str]) -> Callable[[pl.DataFrame], dict[str, Any]]:
    """A snapshot's move: `shift` columns count the days (a `days since`, a tenure), `constant` columns hold one
    value on every row of a day (read from its first row)."""

    def moves(frame: pl.DataFrame) -> dict[str, Any]:
        return {"shift": list(shift), "set": {c: frame.get_column(c)[0] for c in constant}}

    return moves


# A delta is computed in memory, from both days' full tables: beyond this many cells a day the day before stays full.
# At 1M users (about 119M cells) user_features' delta took 44 s CPU and 7.9 GiB (docs/benchmarks.md); computing it
# in DuckDB within its memory limit would lift the bound.
DELTA_MAX_CELLS = 4_000_000

SNAPSHOTS: dict[tuple[str, str], DeltaLayout] = {
    ("actionable", "user_features"): DeltaLayout(key=("user_id",), day="as_of", move_on=shifted, cells=True),
    ("actionable", "profiles"): DeltaLayout(key=("user_id",), day=None, cells=True),
    ("actionable", "marketing_consent"): DeltaLayout(key=("user_id",), day=None, cells=True),
    ("campaigns", "audiences"): DeltaLayout(key=("campaign_id", "user_id"), day="as_of", cells=True),
    # cumulative and nearly append-only: the day before is the day's table without its new rows (and earlier `since`)
    ("actionable", "channel_suppressions"): DeltaLayout(key=("user_id", "channel"), day=None, cells=True),
}


def read_day(lake: Lake, layer: str, table: str, ds: date, columns: Collection[str] | None = None) -> pa.Table:
    """The full partition of `ds` as `read_partition` reads it (its `ds` column included), rebuilt when stored as
    a delta; with `columns`, only those of its columns (as `read_partition` projects them)."""
    path = lake.partition_file(layer, table, ds)
    if not stored_as_delta(path):
        return read_partition(connect(), path, columns)
    con = connect()
    con.register("_day", _content(lake, layer, table, ds))
    day = con.sql("SELECT *, CAST(? AS DATE) AS ds FROM _day", params=[ds])
    return (day if columns is None else day.select(*projected(day.columns, columns))).to_arrow_table()


def store_day(lake: Lake, layer: str, table: str, ds: date, full: pa.Table, start: date, **moves: Any) -> int:
    """Write the day's full table, then the day before as a delta on it (unless it stays full: `_chained`). `moves`:
    how the writer moves rows back a day (a `shift_moves`), when the layout moves them. Returns the rows written."""
    layout = SNAPSHOTS[(layer, table)]
    layout = replace(layout, **moves) if moves else layout
    previous = ds - timedelta(days=1)
    previous_path = lake.partition_file(layer, table, previous)
    small = full.num_rows * full.num_columns <= DELTA_MAX_CELLS
    before = None
    if previous >= start and previous_path.exists():
        was_delta = stored_as_delta(previous_path)
        if small or was_delta:
            before = _content(lake, layer, table, previous)
        if was_delta:  # a delta on the day rewritten: full first
            write_parquet_atomic(before, previous_path)
    rows = write_parquet_atomic(full, lake.partition_file(layer, table, ds))
    if before is not None and small:
        delta = _chained(lake, layer, table, previous, start, full, before, layout)
        if delta is not None:
            write_parquet_atomic(delta, previous_path)
    return rows


def _chained(
    lake: Lake, layer: str, table: str, day: date, start: date, after: pa.Table, before: pa.Table, layout: DeltaLayout
) -> pa.Table | None:
    """`before` (the table of `day`) as a delta on `after` (the day after's), its move recording the cells of the
    chain it ends (its own and the deltas' below it, down to a full day); None when the day stays full: the chain
    would hold as many cells as the day itself, the day is the program's first, or no delta rebuilds it exactly."""
    if day <= start:  # the first day stays full: a glob over the table's files takes its columns from it
        return None
    below = _chain_cells(lake, layer, table, day - timedelta(days=1), start)
    size = stored_cells(before, layout)
    if below is None or below >= size:
        return None
    delta = table_delta(after, before, layout, day, base=(day + timedelta(days=1)).isoformat(), gap=-1)
    chain = None if delta is None else below + delta_moves(delta.schema)["cells"]
    return None if chain is None or chain >= size else with_moves(delta, chain=chain)


def _chain_cells(lake: Lake, layer: str, table: str, day: date, start: date) -> int | None:
    """The cells of the chain of deltas that `day` ends (0 when it is full, missing or before the start); None for a
    delta written before chains were counted (the day after it then stays full, and a new chain starts)."""
    path = lake.partition_file(layer, table, day)
    if day < start or not path.exists():
        return 0
    schema = pq.read_schema(readable(path))
    return delta_moves(schema).get("chain") if is_delta(schema) else 0


def _content(lake: Lake, layer: str, table: str, ds: date) -> pa.Table:
    """The full table of `ds` as its file holds it (no `ds` column), rebuilt when a delta: from the full partition
    above it, through the deltas in between."""
    chain, day = [], ds
    stored = pq.read_table(readable(lake.partition_file(layer, table, day)))
    while is_delta(stored.schema):
        chain.append((day, stored))
        day = date.fromisoformat(delta_moves(stored.schema)["base"])
        stored = pq.read_table(readable(lake.partition_file(layer, table, day)))
    return apply_deltas(stored, chain[::-1], SNAPSHOTS[(layer, table)]) if chain else stored


def stored_as_delta(path: object) -> bool:
    return is_delta(pq.read_schema(readable(path)))
