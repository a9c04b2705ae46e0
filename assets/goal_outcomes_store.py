"""How goals/goal_user_outcomes is stored: the newest partition and a checkpoint every
`CHECKPOINT_EVERY_DAYS` days in full, every other partition as a delta on the day before.

The table is cumulative: each day settles one more day for every cohort user of a measured goal, so a full
copy a day grows with days x users, though most rows only move on (`days` + 1, `last_ds` = the settled day).
A delta keeps what the move does not explain: the rows of the day's table that differ from the day before's
rows moved on, new users included. Its Arrow schema metadata (`DELTA_KEY`) says the settled day and the
(goal_id, metric, campaign_id) groups that moved on. Reading day d: the last full partition at or before d,
then each delta after it moved on and overlaid (`apply_delta`). A delta is stored only when applying it gives
back the full table exactly (`outcomes_delta` checks), so readers see the same table either way.

Erasure removes a user's rows from every partition, full or delta: a chain without them rebuilds the table
without them. Pure functions over Arrow tables: no Dagster, no files.
"""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pyarrow as pa

from assets.goals import OUTCOME_KEY, with_value_columns, without_empty_values

CHECKPOINT_EVERY_DAYS = 7  # a full partition every 7 days from the program's start: a read applies at most 6 deltas
DELTA_KEY = b"pyramid.delta"
_GROUP = ["goal_id", "metric", "campaign_id"]
_COLUMNS = [*OUTCOME_KEY, "first_ds", "last_ds", "days", "successes", "numerator", "denominator"]


def is_checkpoint(ds: date, start: date) -> bool:
    """Whether the partition of `ds` stays full (the program's first day, then every CHECKPOINT_EVERY_DAYS)."""
    return (ds - start).days % CHECKPOINT_EVERY_DAYS == 0


def is_delta(schema: pa.Schema) -> bool:
    return bool(schema.metadata) and DELTA_KEY in schema.metadata


def outcomes_delta(before: pa.Table, after: pa.Table) -> pa.Table | None:
    """`after` (the day's full table) as a delta on `before` (the day before's), or None when the delta would
    not rebuild it exactly (or saves nothing)."""
    frame = _frame(after)
    if frame.is_empty():
        return None
    settled = frame.get_column("last_ds").max()
    groups = frame.filter(pl.col("last_ds") == settled).select(_GROUP).unique().sort(_GROUP)
    moved = _moved_on(_frame(before), settled, groups)
    joined = frame.join(moved, on=OUTCOME_KEY, how="left", suffix="_b")
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}_b")) for c in _COLUMNS if c not in OUTCOME_KEY)
    rows = joined.filter(~same.fill_null(False)).select(frame.columns)
    if rows.height >= frame.height:
        return None
    meta = {"settled": settled.isoformat(), "groups": groups.rows()}
    schema = with_value_columns(after).schema
    delta = rows.with_columns(ds=pl.lit(after.column("ds")[0].as_py(), pl.Date)).select(schema.names)
    table = delta.to_arrow().cast(schema).replace_schema_metadata({DELTA_KEY: json.dumps(meta).encode()})
    return table if apply_delta(before, table, after.column("ds")[0].as_py()).equals(after) else None


def apply_delta(before: pa.Table, delta: pa.Table, ds: date) -> pa.Table:
    """The full table of `ds` from the day before's full table and the delta of `ds`."""
    meta = json.loads(delta.schema.metadata[DELTA_KEY])
    groups = pl.DataFrame(meta["groups"], schema={c: pl.String for c in _GROUP}, orient="row")
    moved = _moved_on(_frame(before), date.fromisoformat(meta["settled"]), groups)
    changed = _frame(delta)
    merged = pl.concat([moved.join(changed, on=OUTCOME_KEY, how="anti"), changed]).sort(OUTCOME_KEY)
    schema = with_value_columns(delta).schema.remove_metadata()
    table = merged.with_columns(ds=pl.lit(ds, pl.Date)).select(schema.names).to_arrow().cast(schema)
    return without_empty_values(table)


def _moved_on(before: pl.DataFrame, settled: date, groups: pl.DataFrame) -> pl.DataFrame:
    """The day before's rows, those of `groups` measured on `settled` once more (days + 1, last_ds = settled)."""
    marked = before.join(groups.with_columns(_moves=pl.lit(True)), on=_GROUP, how="left")
    moves = pl.col("_moves").fill_null(False) & (pl.col("last_ds") < settled)
    return marked.with_columns(
        days=pl.when(moves).then(pl.col("days") + 1).otherwise(pl.col("days")),
        last_ds=pl.when(moves).then(pl.lit(settled, pl.Date)).otherwise(pl.col("last_ds")),
    ).select(_COLUMNS)


def _frame(table: pa.Table) -> pl.DataFrame:
    return pl.from_arrow(with_value_columns(table).select(_COLUMNS).replace_schema_metadata(None))
