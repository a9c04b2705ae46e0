"""How the cumulative goal tables are stored: the newest partition and a checkpoint every
`CHECKPOINT_EVERY_DAYS` days in full, every other partition as a delta on the day before.

A cumulative table (goals/goal_user_outcomes, goals/goal_cohort) is the day before's rows moved on plus what the
day adds, so a full copy a day grows with days x users though most rows only move on. A `DeltaLayout` says how a
table's rows move on: its key, and the move the day makes to every row (none for goal_cohort, whose rows stay as
they were unless the day sets an exposure, anchor or first event; for goal_user_outcomes, `days` + 1 and
`last_ds` = the settled day in the groups measured: `OUTCOMES`). A delta keeps what the move does not explain:
the rows of the day's table that differ from the day before's rows moved on, new rows included. Its Arrow schema
metadata (`DELTA_KEY`) holds what the move needs (for OUTCOMES: the settled day and the (goal_id, metric,
campaign_id) groups that moved on). Reading day d: the last full partition at or before d, then each delta after
it moved on and overlaid (`apply_delta`). A delta is stored only when applying it gives back the full table
exactly (`table_delta` checks; a row that disappeared, for one, keeps the day full), so readers see the same
table either way.

Erasure removes a user's rows from every partition, full or delta: a chain without them rebuilds the table
without them. Pure functions over Arrow tables: no Dagster, no files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl
import pyarrow as pa

from assets.goals import OUTCOME_KEY, with_value_columns, without_empty_values

CHECKPOINT_EVERY_DAYS = 7  # a full partition every 7 days from the program's start: a read applies at most 6 deltas
DELTA_KEY = b"pyramid.delta"


def _same(table: pa.Table) -> pa.Table:
    return table


def _no_moves(_frame: pl.DataFrame) -> dict[str, Any]:
    return {}


def _unmoved(before: pl.DataFrame, _moves: Mapping[str, Any]) -> pl.DataFrame:
    return before


@dataclass(frozen=True)
class DeltaLayout:
    """How a cumulative table's rows (`ds` first, then `key`, then values) follow from the day before's."""

    key: tuple[str, ...]
    normalise: Callable[[pa.Table], pa.Table] = _same  # the stored table in one fixed set of columns
    finish: Callable[[pa.Table], pa.Table] = _same  # a normalised table back to its stored form
    moves: Callable[[pl.DataFrame], dict[str, Any]] = _no_moves  # the day's move (JSON), from its rows
    move_on: Callable[[pl.DataFrame, Mapping[str, Any]], pl.DataFrame] = _unmoved  # the day before's rows moved


def is_checkpoint(ds: date, start: date) -> bool:
    """Whether the partition of `ds` stays full (the program's first day, then every CHECKPOINT_EVERY_DAYS)."""
    return (ds - start).days % CHECKPOINT_EVERY_DAYS == 0


def is_delta(schema: pa.Schema) -> bool:
    return bool(schema.metadata) and DELTA_KEY in schema.metadata


def table_delta(before: pa.Table, after: pa.Table, layout: DeltaLayout) -> pa.Table | None:
    """`after` (the day's full table) as a delta on `before` (the day before's), or None when the delta would
    not rebuild it exactly (or saves nothing)."""
    frame = _frame(after, layout)
    if frame.is_empty():
        return None
    moves = json.loads(json.dumps(layout.moves(frame)))
    moved = layout.move_on(_frame(before, layout), moves)
    if moved.columns != frame.columns:  # a column added or dropped since the day before: keep the day full
        return None
    key = list(layout.key)
    joined = frame.join(moved, on=key, how="left", suffix="_b")
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_b")) for c in frame.columns if c not in key)
    rows = joined.filter(~same.fill_null(False)).select(frame.columns)
    if rows.height >= frame.height:
        return None
    ds = after.column("ds")[0].as_py()
    schema = layout.normalise(after).schema
    delta = rows.with_columns(ds=pl.lit(ds, pl.Date)).select(schema.names)
    table = delta.to_arrow().cast(schema).replace_schema_metadata({DELTA_KEY: json.dumps(moves).encode()})
    return table if apply_delta(before, table, ds, layout).equals(after) else None


def apply_delta(before: pa.Table, delta: pa.Table, ds: date, layout: DeltaLayout) -> pa.Table:
    """The full table of `ds` from the day before's full table and the delta of `ds`."""
    moved = layout.move_on(_frame(before, layout), json.loads(delta.schema.metadata[DELTA_KEY]))
    changed = _frame(delta, layout)
    key = list(layout.key)
    merged = pl.concat([moved.join(changed, on=key, how="anti"), changed]).sort(key)
    schema = layout.normalise(delta).schema.remove_metadata()
    table = merged.with_columns(ds=pl.lit(ds, pl.Date)).select(schema.names).to_arrow().cast(schema)
    return layout.finish(table)


def _frame(table: pa.Table, layout: DeltaLayout) -> pl.DataFrame:
    """The table's rows without `ds`, key first."""
    normalised = layout.normalise(table).replace_schema_metadata(None)
    values = [c for c in normalised.column_names if c != "ds" and c not in layout.key]
    return pl.from_arrow(normalised.select([*layout.key, *values]))


# --- goals/goal_user_outcomes: each measured group moves on by the settled day --------------------------------

_GROUP = ["goal_id", "metric", "campaign_id"]
_COLUMNS = [*OUTCOME_KEY, "first_ds", "last_ds", "days", "successes", "numerator", "denominator"]


def _outcome_columns(table: pa.Table) -> pa.Table:
    return with_value_columns(table).select(["ds", *_COLUMNS])


def _settled_groups(frame: pl.DataFrame) -> dict[str, Any]:
    """The day settled (the latest `last_ds`) and the groups measured on it."""
    settled = frame.get_column("last_ds").max()
    groups = frame.filter(pl.col("last_ds") == settled).select(_GROUP).unique().sort(_GROUP)
    return {"settled": settled.isoformat(), "groups": groups.rows()}


def _moved_on(before: pl.DataFrame, moves: Mapping[str, Any]) -> pl.DataFrame:
    """The day before's rows, those of the groups measured on the settled day once more (days + 1, last_ds)."""
    settled = date.fromisoformat(moves["settled"])
    groups = pl.DataFrame(moves["groups"], schema={c: pl.String for c in _GROUP}, orient="row")
    marked = before.join(groups.with_columns(_moves=pl.lit(True)), on=_GROUP, how="left")
    moving = pl.col("_moves").fill_null(False) & (pl.col("last_ds") < settled)
    return marked.with_columns(
        days=pl.when(moving).then(pl.col("days") + 1).otherwise(pl.col("days")),
        last_ds=pl.when(moving).then(pl.lit(settled, pl.Date)).otherwise(pl.col("last_ds")),
    ).select(_COLUMNS)


OUTCOMES = DeltaLayout(
    key=tuple(OUTCOME_KEY),
    normalise=_outcome_columns,
    finish=without_empty_values,
    moves=_settled_groups,
    move_on=_moved_on,
)
