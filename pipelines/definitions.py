"""The Dagster code location: every pyramid layer as assets, the nightly job and its schedule.

`dagster dev` in the project folder loads this module (see `[tool.dagster]` in pyproject.toml).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from assets.pyramid_map import PyramidMap, default_map_path, load_map
from pipelines.layers import actionable, campaigns, catalog, exports, goals, raw, reports, segments, touchpoints
from pipelines.layers.ranges import BACKFILL_POLICY
from pipelines.resources import PyramidResource

NIGHTLY_JOB = "nightly_pyramid"
EXECUTOR_ENV = "PYRAMID_EXECUTOR"  # in_process (default) | multiprocess (docs/scaling.md, "Buckets")
MAX_CONCURRENT_ENV = "PYRAMID_MAX_CONCURRENT"  # steps in flight with the multiprocess executor (default: the cores)


def daily_partitions(pyramid_map: PyramidMap) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=pyramid_map.start_date.isoformat(), timezone="UTC")


def build_assets(pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    partitions = daily_partitions(pyramid_map)
    tables = [
        *raw.build(partitions, pyramid_map),
        *actionable.build(partitions, pyramid_map),
        *segments.build(partitions, pyramid_map),
        *campaigns.build(partitions),
        *touchpoints.build(partitions, pyramid_map),
        *goals.build(partitions, pyramid_map),
        *exports.build(partitions, pyramid_map),
    ]
    assets = [*tables, *catalog.build(partitions, pyramid_map, tables), *reports.build(partitions, pyramid_map)]
    # a backfill runs chunks of days per run, each asset's body once per day in order (pipelines/layers/ranges.py)
    return [a.with_attributes(backfill_policy=BACKFILL_POLICY) for a in assets]


def build_definitions(pyramid_map: PyramidMap, pyramid: PyramidResource | None = None) -> dg.Definitions:
    """The code location for a map; `pyramid` overrides where the data root is. The run uses the map the
    graph was built from: the resource's map path is the map's own, and a resource naming another is refused."""
    nightly = dg.define_asset_job(
        NIGHTLY_JOB,
        selection=dg.AssetSelection.all(),
        executor_def=nightly_executor(),
        description="Every layer of the pyramid for one day, raw data to the North Star.",
    )
    schedule = dg.build_schedule_from_partitioned_job(
        nightly,
        name="nightly_pyramid_schedule",
        hour_of_day=pyramid_map.run_at[0],
        minute_of_hour=pyramid_map.run_at[1],
        description="Each night, materialize the day that just ended.",
    )
    return dg.Definitions(
        assets=build_assets(pyramid_map),
        jobs=[nightly],
        schedules=[schedule],
        resources={"pyramid": resource_for(pyramid_map, pyramid or PyramidResource())},
    )


def nightly_executor() -> dg.ExecutorDefinition:
    """`$PYRAMID_EXECUTOR`: in_process by default (one process per step costs seconds each; most steps are small),
    or multiprocess, running up to `$PYRAMID_MAX_CONCURRENT` steps (the goal step's buckets among them) at once."""
    name = os.environ.get(EXECUTOR_ENV, "").strip() or "in_process"
    if name == "in_process":
        return dg.in_process_executor
    if name != "multiprocess":
        raise ValueError(f"{EXECUTOR_ENV} must be in_process or multiprocess, got {name!r}")
    text = os.environ.get(MAX_CONCURRENT_ENV, "").strip() or str(os.cpu_count() or 1)
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{MAX_CONCURRENT_ENV} must be a whole number of steps (1 or more), got {text!r}")
    return dg.multiprocess_executor.configured({"max_concurrent": int(text)}, name="multiprocess")


def resource_for(pyramid_map: PyramidMap, pyramid: PyramidResource) -> PyramidResource:
    """`pyramid` with the map path of `pyramid_map`; ValueError when it names another map."""
    own = Path(pyramid_map.path).resolve()
    if pyramid.map_path and Path(pyramid.map_path).resolve() != own:
        raise ValueError(
            f"the graph is built from the map {own}, but the resource names {pyramid.map_path}: "
            "a run must use the map its graph was built from"
        )
    return PyramidResource(data_root=pyramid.data_root, map_path=str(own))


defs = build_definitions(load_map(default_map_path()))
