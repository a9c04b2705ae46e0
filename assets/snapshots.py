"""The daily snapshot tables of the lake (user_features, profiles, marketing_consent, audiences) stored with
assets/delta_store.py: the newest partition and a checkpoint every CHECKPOINT_EVERY_DAYS days in full, every other
day as a delta on the day after it (its base), with only the cells that changed.

A snapshot is one row per user (or per campaign and user) a day, and most rows change nothing from one day to the
next but a few counters (a `days since` grows with the gap: the `shift` of the move). When day d is written in full,
the day before is rewritten as a delta on d: it holds the cells d's rows, moved back a day, do not give, the rows
d no longer has, and it is kept only when it rebuilds the day before exactly. Before a day is rewritten (a re-run),
the day before it, a delta on it, is first stored in full. `read_day` rebuilds any day, as `read_partition` reads a
full one: from the next full partition back, at most CHECKPOINT_EVERY_DAYS - 1 deltas.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from assets.delta_store import DeltaLayout, apply_delta, delta_moves, is_checkpoint, is_delta, table_delta
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
    """Write the day's full table, then the day before as a delta on it (unless a checkpoint, or the delta would not
    rebuild it exactly). `moves`: how the writer moves rows back a day (a `shift_moves`), when the layout moves
    them. Returns the rows written."""
    layout = SNAPSHOTS[(layer, table)]
    layout = replace(layout, **moves) if moves else layout
    previous = ds - timedelta(days=1)
    previous_path = lake.partition_file(layer, table, previous)
    small = full.num_rows * full.num_columns <= DELTA_MAX_CELLS
    before = None
    if previous >= start and not is_checkpoint(previous, start) and previous_path.exists():
        was_delta = stored_as_delta(previous_path)
        if small or was_delta:
            before = _content(lake, layer, table, previous)
        if was_delta:  # a delta on the day rewritten: full first
            write_parquet_atomic(before, previous_path)
    rows = write_parquet_atomic(full, lake.partition_file(layer, table, ds))
    if before is not None and small:
        delta = table_delta(full, before, layout, previous, base=ds.isoformat(), gap=-1)
        if delta is not None:
            write_parquet_atomic(delta, previous_path)
    return rows


def _content(lake: Lake, layer: str, table: str, ds: date) -> pa.Table:
    """The full table of `ds` as its file holds it (no `ds` column), rebuilt from its base when a delta."""
    stored = pq.read_table(readable(lake.partition_file(layer, table, ds)))
    if not is_delta(stored.schema):
        return stored
    base = date.fromisoformat(delta_moves(stored.schema)["base"])
    return apply_delta(_content(lake, layer, table, base), stored, ds, SNAPSHOTS[(layer, table)])


def stored_as_delta(path: object) -> bool:
    return is_delta(pq.read_schema(readable(path)))
