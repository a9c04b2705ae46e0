"""How a table stored once a day keeps most of its days small: a full partition at the newest day and where a chain
of deltas would otherwise grow too long, every other partition as a delta on a neighbouring day's full table (its
base). The daily snapshots (assets/snapshots.py) keep a day full when the deltas down to the full day below would
hold as many cells as it; the goal tables (pipelines/layers/goals.py) at checkpoints, every `CHECKPOINT_EVERY_DAYS`
days from the program's start.

A daily table is mostly the base's rows moved on: a cumulative goal table's rows count one more day, a snapshot's
rows stay as they were but for a "days since" that grows with the gap. A full copy a day grows with days x users
though most rows only move. A `DeltaLayout` says how a table's rows follow from its base's: its key, its day column
(set to the day on a rebuild), and the move the day makes to every row (`moves`, JSON kept in the delta's Arrow
schema metadata under `DELTA_KEY`; `move_on` applies it to the base's rows). A delta keeps what the move does not
explain: the rows of the day's table that differ from the base's rows moved on, new rows included. With `cells`,
a delta row holds only the cells that differ (the others NULL, `NULLED` listing the cells that became NULL), and a
key the day no longer has is kept with `REMOVED` set, so that a snapshot whose users change a few columns stores
those columns only. Reading a day: its base's full table, moved on, the delta overlaid (`apply_delta`; a chain of
deltas in one pass, `apply_deltas`). A delta is stored only when applying it gives back the full table exactly
(`table_delta` checks), so readers see the same table either way. Its move also records the `cells` it stores (its
keys and the values that are not NULL; `stored_cells` counts a full table's the same way).

Erasure removes a user's rows from every partition, full or delta: a chain without them rebuilds the table
without them. Pure functions over Arrow tables: no Dagster, no files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl
import pyarrow as pa

CHECKPOINT_EVERY_DAYS = 7  # goal tables: a full partition every 7 days from the start, a read applies at most 6 deltas
DELTA_KEY = b"pyramid.delta"
NULLED = "_delta_nulled"  # cells mode: the columns of the row that became NULL
REMOVED = "_delta_removed"  # cells mode: the key is not in the day's table


def _same(table: pa.Table) -> pa.Table:
    return table


def _no_moves(_frame: pl.DataFrame) -> dict[str, Any]:
    return {}


def _unmoved(before: pl.DataFrame, _moves: Mapping[str, Any]) -> pl.DataFrame:
    return before


@dataclass(frozen=True)
class DeltaLayout:
    """How a daily table's rows (`key`, then values; `day` holds the partition's day) follow from its base's."""

    key: tuple[str, ...]
    normalise: Callable[[pa.Table], pa.Table] = _same  # the stored table in one fixed set of columns
    finish: Callable[[pa.Table], pa.Table] = _same  # a normalised table back to its stored form
    moves: Callable[[pl.DataFrame], dict[str, Any]] = _no_moves  # the day's move (JSON), from its rows
    move_on: Callable[[pl.DataFrame, Mapping[str, Any]], pl.DataFrame] = _unmoved  # the base's rows moved, row by row
    day: str | None = "ds"  # the column set to the partition's day (None: the table has none)
    cells: bool = False  # a delta row holds only the changed cells, and removed keys are kept as such


def is_checkpoint(ds: date, start: date) -> bool:
    """Whether the partition of `ds` stays full (the program's first day, then every CHECKPOINT_EVERY_DAYS)."""
    return (ds - start).days % CHECKPOINT_EVERY_DAYS == 0


def is_delta(schema: pa.Schema) -> bool:
    return bool(schema.metadata) and DELTA_KEY in schema.metadata


def delta_moves(schema: pa.Schema) -> dict[str, Any]:
    """The move a delta's metadata records (with its base day under `base` when the lake wrote it)."""
    return json.loads(schema.metadata[DELTA_KEY])


def with_moves(delta: pa.Table, **extra: Any) -> pa.Table:
    """The delta with `extra` joined to the move its metadata records (bookkeeping only: the rebuild is the same)."""
    return delta.replace_schema_metadata({DELTA_KEY: json.dumps({**delta_moves(delta.schema), **extra}).encode()})


def table_delta(
    before: pa.Table, after: pa.Table, layout: DeltaLayout, ds: date | None = None, **extra: Any
) -> pa.Table | None:
    """`after` (the day's full table) as a delta on `before` (its base's full table), or None when the delta would
    not rebuild it exactly (or saves nothing). `ds`: the day of `after` (default: its `ds` column); `extra` joins
    the move (JSON)."""
    frame = _frame(after, layout)
    if frame.is_empty():
        return None
    moves = json.loads(json.dumps({**layout.moves(frame), **extra}))
    moved = layout.move_on(_frame(before, layout), moves)
    if moved.columns != frame.columns:  # a column added or dropped since the base: keep the day full
        return None
    ds = after.column("ds")[0].as_py() if ds is None else ds
    rows = _cell_rows(frame, moved, layout) if layout.cells else _changed_rows(frame, moved, layout)
    if rows is None or rows.height >= frame.height:
        return None
    cells = _size(rows, layout)
    if cells >= _size(frame, layout):
        return None
    schema = layout.normalise(after).schema.remove_metadata()
    if layout.cells:
        schema = schema.append(pa.field(NULLED, pa.list_(pa.string()))).append(pa.field(REMOVED, pa.bool_()))
    if layout.day is not None:
        rows = rows.with_columns(pl.lit(ds, pl.Date).alias(layout.day))
    metadata = {DELTA_KEY: json.dumps({**moves, "cells": cells}).encode()}
    table = rows.select(schema.names).to_arrow().cast(schema).replace_schema_metadata(metadata)
    return table if apply_delta(before, table, ds, layout).equals(after) else None


def stored_cells(table: pa.Table, layout: DeltaLayout) -> int:
    """The cells a full table stores (its keys and the values that are not NULL with `cells`), as a delta's
    `cells` counts its own."""
    return _size(_frame(table, layout), layout)


def _size(frame: pl.DataFrame, layout: DeltaLayout) -> int:
    """The cells a table stores: with `cells` its keys and the values that are not NULL, else every cell."""
    if not layout.cells:
        return frame.height * frame.width
    values = [c for c in frame.columns if c not in layout.key and c not in (NULLED, REMOVED)]
    return frame.height * len(layout.key) + sum(frame.select(pl.col(values).count()).row(0))


def _changed_rows(frame: pl.DataFrame, moved: pl.DataFrame, layout: DeltaLayout) -> pl.DataFrame | None:
    """The day's rows that differ from the base's moved on, whole; None when a key disappeared."""
    key = list(layout.key)
    if moved.join(frame, on=key, how="anti").height:
        return None
    joined = frame.join(moved, on=key, how="left", suffix="_b")
    return joined.filter(~_same_row(frame, key).fill_null(False)).select(frame.columns)


def _cell_rows(frame: pl.DataFrame, moved: pl.DataFrame, layout: DeltaLayout) -> pl.DataFrame:
    """The day's rows that differ, the unchanged cells NULL and the NULLed ones listed; the removed keys."""
    key, types = list(layout.key), frame.schema
    values = [c for c in frame.columns if c not in key]
    joined = frame.join(moved, on=key, how="left", suffix="_b")
    changed = joined.filter(~_same_row(frame, key).fill_null(False))
    differs = {c: ~pl.col(c).eq_missing(pl.col(f"{c}_b")) for c in values}
    nulled = pl.concat_list([pl.when(d & pl.col(c).is_null()).then(pl.lit(c)) for c, d in differs.items()])
    rows = changed.select(
        *key,
        *(pl.when(d).then(pl.col(c)).alias(c) for c, d in differs.items()),
        nulled.list.drop_nulls().alias(NULLED),
        pl.lit(False).alias(REMOVED),
    )
    removed = (
        moved.join(frame, on=key, how="anti")
        .select(key)
        .with_columns(
            [pl.lit(None, types[c]).alias(c) for c in values]
            + [pl.lit([], pl.List(pl.String)).alias(NULLED), pl.lit(True).alias(REMOVED)]
        )
    )
    return pl.concat([rows, removed.select(rows.columns)])


def _same_row(frame: pl.DataFrame, key: list[str]) -> pl.Expr:
    return pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_b")) for c in frame.columns if c not in key)


def apply_delta(before: pa.Table, delta: pa.Table, ds: date, layout: DeltaLayout) -> pa.Table:
    """The full table of `ds` from its base's full table and the delta of `ds`."""
    return apply_deltas(before, [(ds, delta)], layout)


def apply_deltas(before: pa.Table, deltas: Sequence[tuple[date, pa.Table]], layout: DeltaLayout) -> pa.Table:
    """The full table of the last of `deltas` (day, delta), each a delta on the one before it, the first on `before`:
    as applying them one by one, but the rows no delta names are only moved (`move_on` acts row by row), so a
    long chain costs its deltas and one full table, not one full table a delta."""
    key, frame = list(layout.key), _frame(before, layout)
    untouched = None
    if len(deltas) > 1:
        named = pl.concat([pl.from_arrow(delta.select(key).replace_schema_metadata(None)) for _, delta in deltas])
        untouched = frame.join(named.unique(), on=key, how="anti")
        frame = frame.join(named.unique(), on=key, how="semi")
        for _, delta in deltas:
            untouched = layout.move_on(untouched, delta_moves(delta.schema))
    for _, delta in deltas:
        frame = _applied(frame, delta, layout)
    if untouched is not None:
        frame = pl.concat([untouched, frame], how="vertical_relaxed").sort(key)
    ds, last = deltas[-1]
    last = last.drop_columns([NULLED, REMOVED]) if layout.cells else last
    schema = layout.normalise(last).schema.remove_metadata()
    if layout.day is not None:
        frame = frame.with_columns(pl.lit(ds, pl.Date).alias(layout.day))
    return layout.finish(frame.select(schema.names).to_arrow().cast(schema))


def _applied(frame: pl.DataFrame, delta: pa.Table, layout: DeltaLayout) -> pl.DataFrame:
    """One delta over its base's rows (`_frame`'s columns): the base's rows moved on, the delta's rows overlaid."""
    moved = layout.move_on(frame, delta_moves(delta.schema))
    key = list(layout.key)
    if layout.cells:
        rows = pl.from_arrow(delta.replace_schema_metadata(None))
        changed = _overlaid(moved, rows.filter(~pl.col(REMOVED)), key)
    else:
        rows = changed = _frame(delta, layout)
    return pl.concat([moved.join(rows, on=key, how="anti"), changed.select(moved.columns)]).sort(key)


def _overlaid(moved: pl.DataFrame, changed: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """The delta's changed rows completed from the base's moved rows: a NULL cell is unchanged unless NULLed."""
    values = [c for c in moved.columns if c not in key]
    joined = changed.join(moved, on=key, how="left", suffix="_b")
    nulled = pl.col(NULLED)
    return joined.select(
        *key,
        *(pl.when(nulled.list.contains(c)).then(None).otherwise(pl.coalesce(c, f"{c}_b")).alias(c) for c in values),
    )


def _frame(table: pa.Table, layout: DeltaLayout) -> pl.DataFrame:
    """The table's rows without its day column, key first."""
    normalised = layout.normalise(table).replace_schema_metadata(None)
    values = [c for c in normalised.column_names if c != layout.day and c not in layout.key]
    values = [c for c in values if c not in (NULLED, REMOVED)]
    return pl.from_arrow(normalised.select([*layout.key, *values]))
