"""One small Dagster run of the whole pyramid, shared by the end-to-end and privacy tests (the
session-scoped fixture `run` in tests/conftest.py)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
import duckdb
import pyarrow.parquet as pq

from assets.lake import Lake, write_parquet_atomic
from assets.pyramid_map import PyramidMap, load_map
from assets.snapshots import SNAPSHOTS, read_day
from pipelines.definitions import NIGHTLY_JOB, build_definitions
from pipelines.resources import PyramidResource
from pipelines.runner import QUIET
from pipelines.sample.generate import generate_sample

USERS, DAYS, SEED = 2500, 8, 5
# Copied aside as the run wrote them, before any test re-runs a day (tests/test_pinned_outputs.py reads them)
AS_RUN_TABLES = [
    ("actionable", "user_daily"),
    ("actionable", "user_features"),
    ("segments", "segment_membership"),
    ("segments", "segment_summary"),
    ("campaigns", "audiences"),
    ("goals", "goal_metrics"),
    ("goals", "north_star"),
]
PII = ("email", "phone", "full_name")


@dataclass
class PyramidRun:
    lake: Lake
    pyramid_map: PyramidMap
    days: list[date]
    results: dict
    job: dg.JobDefinition
    instance: dg.DagsterInstance
    sent: dict  # day -> audiences of the day as written by its run (before later erasures removed users)
    as_run: Lake  # AS_RUN_TABLES as the run wrote them (tests re-run days of `lake`)

    def glob(self, layer: str, table: str) -> str:
        """A read_parquet glob over every day of a table as read back: a snapshot's days rebuilt in full
        (assets/snapshots.py), written aside."""
        if (layer, table) not in SNAPSHOTS:
            return self.lake.glob(layer, table)
        full = Lake(self.as_run.root.parent / f"{self.as_run.root.name}_full")
        shutil.rmtree(full.table_dir(layer, table), ignore_errors=True)
        write_full_days(self.lake, layer, table, full)
        return full.glob(layer, table)

    def audience(self, day: date, campaign_id: str) -> list[str]:
        return [r["user_id"] for r in self.sent[day] if r["campaign_id"] == campaign_id]

    def erased(self, through: date | None = None) -> set[str]:
        """Users who asked to be erased (on a landing day up to `through`)."""
        return {
            r["user_id"]
            for r in _lake_rows(self.lake, "raw", "erasure_requests")
            if r["user_id"] and (through is None or r["ds"] <= through)
        }


def make_run(tmp_path_factory) -> PyramidRun:
    root = tmp_path_factory.mktemp("pyramid")
    pyramid_map = load_map()
    generate_sample(root / "landing", users=USERS, days=DAYS, seed=SEED, pyramid_map=pyramid_map)
    defs = build_definitions(pyramid_map, PyramidResource(data_root=str(root)))
    job = defs.resolve_job_def(NIGHTLY_JOB)
    # on disk, as in production: the PII scan (tests/test_pii_scan.py) reads every file of its storage
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path_factory.mktemp("dagster_home")))
    days = [pyramid_map.start_date + timedelta(days=n) for n in range(DAYS)]
    results, sent = {}, {}
    for day in days:
        results[day] = job.execute_in_process(partition_key=day.isoformat(), instance=instance, run_config=QUIET)
        sent[day] = pq.read_table(Lake(root).partition_file("campaigns", "audiences", day)).to_pylist()
    as_run = Lake(tmp_path_factory.mktemp("as_run"))
    for layer, table in AS_RUN_TABLES:
        if (layer, table) in SNAPSHOTS:  # the days as read back
            write_full_days(Lake(root), layer, table, as_run)
        else:
            shutil.copytree(Lake(root).table_dir(layer, table), as_run.table_dir(layer, table))
    return PyramidRun(Lake(root), pyramid_map, days, results, job, instance, sent, as_run)


def write_full_days(lake: Lake, layer: str, table: str, into: Lake) -> None:
    """Every day of a snapshot table, rebuilt where stored as a delta, written in full under `into`."""
    for day in lake.partitions(layer, table):
        write_parquet_atomic(
            read_day(lake, layer, table, day).drop_columns(["ds"]), into.partition_file(layer, table, day)
        )


def _lake_rows(lake: Lake, layer: str, table: str, where: str = "") -> list[dict]:
    sql = f"SELECT * FROM read_parquet('{lake.glob(layer, table)}', hive_partitioning = true) {where}"
    relation = duckdb.sql(sql)
    return [dict(zip(relation.columns, row)) for row in relation.fetchall()]
