"""Dagster assets, one module per pyramid layer. Each asset is thin: read its inputs from the lake,
call the layer's pure transform in `assets/`, write atomically, report metadata and checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pyarrow as pa

from assets.features import touchpoint_daily_schema
from assets.lake import Lake, connect, read_partition, read_partitions, write_parquet_atomic
from assets.snapshots import SNAPSHOTS, read_day, store_day
from pipelines.metadata import table_metadata

if TYPE_CHECKING:
    from upath import UPath

LAKE_TABLE = "lake_table"  # definition metadata: the `layer/table` of the lake an asset writes


def lake_table(layer: str, table: str) -> dict[str, str]:
    """Definition metadata naming the lake table an asset writes (the catalog finds its views' assets by it)."""
    return {LAKE_TABLE: f"{layer}/{table}"}


def partition_day(context: dg.AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def write_table(lake: Lake, layer: str, table_name: str, ds: date, table: pa.Table, **extra) -> dict:
    """Write one partition atomically and return its materialization metadata."""
    path: Path = lake.partition_file(layer, table_name, ds)
    write_parquet_atomic(table, path)
    return table_metadata(table, path, **extra)


def write_snapshot(
    lake: Lake,
    layer: str,
    table_name: str,
    ds: date,
    table: pa.Table,
    start: date,
    moves: Callable | None = None,
    **extra,
) -> dict:
    """Write one day of a snapshot table, the day before becoming a delta on it (assets/snapshots.py); return its
    materialization metadata. `moves`: how the table's rows move back a day, when its layout moves them."""
    store_day(lake, layer, table_name, ds, table, start, **({"moves": moves} if moves else {}))
    return table_metadata(table, lake.partition_file(layer, table_name, ds), **extra)


class MissingPartition(RuntimeError):
    """A partition needs an earlier one that has not been materialized."""


def previous_partition(lake: Lake, layer: str, table: str, ds: date, start: date) -> pa.Table | None:
    """The table's partition for the day before `ds`; None on the first day of the program."""
    path = previous_partition_file(lake, layer, table, ds, start)
    if path is None:
        return None
    if (layer, table) in SNAPSHOTS:  # may be stored as a delta on the day after
        return read_day(lake, layer, table, ds - timedelta(days=1))
    return read_partition(connect(), path)


def previous_partition_file(lake: Lake, layer: str, table: str, ds: date, start: date) -> Path | UPath | None:
    """The file of the table's partition for the day before `ds`; None on the first day of the program. Raises
    MissingPartition when that partition has not been materialized."""
    if ds <= start:
        return None
    previous = ds - timedelta(days=1)
    path = lake.partition_file(layer, table, previous)
    if not path.exists():
        raise MissingPartition(
            f"{layer}/{table} for {ds} builds on the partition of {previous}, which is missing "
            f"({path}); materialize the days in order, e.g. `pyramid run --start {previous}`"
        )
    return path


def lookback_days(ds: date, days: int, start: date) -> list[date]:
    return [ds - timedelta(days=n) for n in range(1, days + 1) if ds - timedelta(days=n) >= start]


def daily_activity(lake: Lake, ds: date, window_days: int, start: date) -> pa.Table:
    """user_daily rows known on `ds` for activity days in the `window_days` ending on `ds`.

    Activity of a day can only land on or after that day, so the landing partitions of the window
    hold all of it; partitions after `ds` are never read, which keeps re-runs reproducible."""
    first = ds - timedelta(days=window_days - 1)
    days = [first + timedelta(days=n) for n in range(window_days) if first + timedelta(days=n) >= start]
    activity = read_partitions(connect(), lake, "actionable", "user_daily", days)
    if activity is None:
        raise MissingPartition(f"actionable/user_daily has no partition between {first} and {ds}")
    con = connect()
    con.register("activity", activity)
    return con.sql("SELECT * FROM activity WHERE activity_date BETWEEN ? AND ?", params=[first, ds]).to_arrow_table()


def touchpoint_daily_activity(lake: Lake, ds: date, window_days: int, start: date) -> pa.Table:
    """user_touchpoint_daily rows known on `ds` for activity days in the `window_days` ending on `ds` (empty when
    none landed), as `daily_activity` reads user_daily."""
    first = ds - timedelta(days=window_days - 1)
    days = [first + timedelta(days=n) for n in range(window_days) if first + timedelta(days=n) >= start]
    table = read_partitions(connect(), lake, "actionable", "user_touchpoint_daily", days)
    if table is None:
        return touchpoint_daily_schema().empty_table()
    con = connect()
    con.register("touchpoint_daily", table)
    return con.sql(
        "SELECT * FROM touchpoint_daily WHERE activity_date BETWEEN ? AND ?", params=[first, ds]
    ).to_arrow_table()


def reason_counts(quarantine: pa.Table) -> dict[str, int]:
    """Quarantined rows per reason (a row with several reasons counts for each)."""
    if quarantine.num_rows == 0:
        return {}
    con = connect()
    con.register("quarantine", quarantine)
    rows = con.sql(
        "SELECT reason, count(*) AS n FROM (SELECT unnest(reasons) AS reason FROM quarantine) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {reason: n for reason, n in rows}
