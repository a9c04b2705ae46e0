"""The goal step's buckets as Dagster steps (docs/scaling.md, "Buckets"): what a bucket's step reads, and where
its per-user tables wait for the collect step.

A bucket's step reads only its users' rows (`Bucket.where` in the Parquet scan's WHERE) and writes its per-user
tables as Parquet parts under the data root's scratch folder, `<root>/scratch/goal_metrics/ds=<day>/` (atomic
writes: a local disk or an object store alike). Between the steps only a `BucketTask` passes (the day, the bucket,
a date, goal ids): no user id, so Dagster's IO manager never pickles personal data. The collect step removes the
day's folder once the goal tables are written; the fan-out step removes what a failed run of the day left.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from assets.buckets import Bucket
from assets.goal_day import GoalDayTables
from assets.lake import Lake, atomic_path, connect, is_local, partition_files, readable
from assets.metrics import KEYS
from assets.pyramid_map import Metric
from assets.snapshots import SNAPSHOTS, read_day, stored_as_delta
from assets.sql_guard import expression_columns
from pipelines.layers import MissingPartition, previous_partition_file

if TYPE_CHECKING:
    from pathlib import Path

    from upath import UPath

STEP = "goal_metrics"


@dataclass(frozen=True)
class BucketTask:
    """What a bucket's step is given: the day, its bucket, the first activity day of the whole read (for the
    time-to-event columns) and the goals measured today."""

    ds: date
    bucket: Bucket
    first_day: date
    measured: tuple[str, ...]


def scratch_dir(lake: Lake, ds: date) -> Path | UPath:
    return lake.scratch / STEP / f"ds={ds.isoformat()}"


def bucket_dir(lake: Lake, task: BucketTask) -> Path | UPath:
    return scratch_dir(lake, task.ds) / f"bucket={task.bucket.index}"


def _part_file(lake: Lake, task: BucketTask, name: str) -> Path | UPath:
    return bucket_dir(lake, task) / f"{name}.parquet"


def write_parts(lake: Lake, task: BucketTask, tables: GoalDayTables) -> None:
    """A bucket's per-user tables as Parquet parts in the day's scratch folder (each written atomically; no Bloom
    filters: nothing searches a part, the collect step reads it whole and removes it)."""
    for field in fields(tables):
        with atomic_path(_part_file(lake, task, field.name)) as tmp:
            pq.write_table(getattr(tables, field.name), tmp, compression="lz4")


def read_parts(lake: Lake, task: BucketTask) -> GoalDayTables:
    """A bucket's per-user tables as its step wrote them (Arrow schemas kept)."""
    return GoalDayTables(
        **{f.name: pq.read_table(readable(_part_file(lake, task, f.name))) for f in fields(GoalDayTables)}
    )


def remove_scratch(lake: Lake, ds: date) -> None:
    """Remove the day's scratch folder and every part in it (none there is fine)."""
    remove_folder(lake, scratch_dir(lake, ds))


def remove_folder(lake: Lake, folder: Path | UPath) -> None:
    """Remove a scratch folder and its parts, then the scratch folders it leaves empty."""
    if not is_local(folder):
        if folder.fs.exists(folder.path):
            folder.fs.rm(folder.path, recursive=True)
        return
    shutil.rmtree(folder, ignore_errors=True)
    for parent in list(folder.parents)[: len(folder.relative_to(lake.scratch).parts)]:  # up to the scratch root
        with contextlib.suppress(OSError):  # not empty: another bucket's or day's parts are there
            parent.rmdir()


def window(ds: date, days: int, start: date) -> tuple[date, list[date]]:
    """The first day and the days (from `start`) of the `days` ending on ds."""
    first = ds - timedelta(days=days - 1)
    return first, [first + timedelta(days=n) for n in range(days) if first + timedelta(days=n) >= start]


def bucket_rows(
    files: list[str], bucket: Bucket, columns: str = "*", where: str = "TRUE", params: tuple = ()
) -> pa.Table | None:
    """The bucket's rows of the Parquet `files` (by name, as `lake.read_partitions`) that meet `where`; None when
    there is no file."""
    if not files:
        return None
    sql = f"SELECT {columns} FROM read_parquet(?, union_by_name = true) WHERE ({where}) AND {bucket.where()}"
    return connect().sql(sql, params=[files, *params]).to_arrow_table()


def metric_columns(metrics: Iterable[Metric]) -> str:
    """`bucket_rows`' select list of the activity columns the metrics read and the keys (those the files have, in
    their order): a bucket's user_daily rows without the measures no metric reads."""
    read = {*KEYS, *(c for m in metrics for text in m.expressions() for c in expression_columns(text))}
    names = ", ".join("'" + c.replace("'", "''") + "'" for c in sorted(read))
    return f"COLUMNS(lambda c: list_contains([{names}], c))"


def previous_bucket_rows(lake: Lake, layer: str, table: str, ds: date, start: date, bucket: Bucket) -> pa.Table | None:
    """The bucket's rows of the table's partition of ds - 1 (`layers.previous_partition`); None on the first day."""
    path = previous_partition_file(lake, layer, table, ds, start)
    if path is None:
        return None
    if (layer, table) in SNAPSHOTS:  # may be stored as a delta on the day after
        return snapshot_bucket_rows(lake, layer, table, ds - timedelta(days=1), bucket)
    if bucket.count == 1:  # exactly `read_partition`'s read
        return connect().sql("SELECT * FROM read_parquet(?)", params=[str(path)]).to_arrow_table()
    return bucket_rows([str(path)], bucket)


def snapshot_bucket_rows(lake: Lake, layer: str, table: str, day: date, bucket: Bucket, columns: str = "*") -> pa.Table:
    """The bucket's rows of a daily snapshot's partition of `day` (assets/snapshots.py), rebuilt first when it is
    stored as a delta on the day after (an older day re-run)."""
    path = lake.partition_file(layer, table, day)
    if not stored_as_delta(path):
        return bucket_rows([str(path)], bucket, columns)
    con = connect()
    con.register("_day", read_day(lake, layer, table, day))
    return con.sql(f"SELECT {columns} FROM _day WHERE {bucket.where()}").to_arrow_table()


def first_activity_day(lake: Lake, ds: date, window_days: int, start: date) -> date:
    """The first activity day of the user_daily rows a goal run reads (`layers.daily_activity`), at or after
    `start`; ds when there is none (as `time_to_event.with_event_days` takes it from the whole read)."""
    first, days = window(ds, window_days, start)
    files = partition_files(lake, "actionable", "user_daily", days)
    if not files:
        raise MissingPartition(f"actionable/user_daily has no partition between {first} and {ds}")
    sql = "SELECT min(activity_date) FROM read_parquet(?, union_by_name = true) WHERE activity_date BETWEEN ? AND ?"
    [(earliest,)] = connect().sql(sql, params=[files, first, ds]).fetchall()
    return max(earliest or ds, start)
