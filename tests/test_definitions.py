"""The asset graph, pinned: every asset with its deps, group, kinds, partitioning and checks, the job and
the schedule, against tests/snapshots/definitions.json. A change to the graph is a reviewed change to
that file; regenerate it deliberately with

    UPDATE_SNAPSHOTS=1 python -m pytest tests/test_definitions.py

Also: the code location loads with `dagster definitions validate`, every catalog view comes from an
asset, and the graph and the run always use one map."""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.lake import Lake
from assets.pyramid_map import DEFAULT_MAP_PATH, load_map
from pipelines.definitions import NIGHTLY_JOB, build_assets, build_definitions
from pipelines.layers import LAKE_TABLE
from pipelines.layers.catalog import catalog_tables, table_assets
from pipelines.resources import PyramidResource
from pipelines.runner import QUIET

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"
REGENERATE = f"UPDATE_SNAPSHOTS=1 python -m pytest {Path(__file__).relative_to(ROOT)}"


def graph_snapshot(defs: dg.Definitions) -> dict:
    """Everything a reviewer should see change: assets, checks, the job and the schedule."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for spec in defs.resolve_all_asset_specs():
        checks = [graph.get_check_spec(k) for k in graph.get_check_keys_for_assets({spec.key})]
        assets[spec.key.to_user_string()] = {
            "step": defs.resolve_assets_def(spec.key).node_def.name,
            "deps": sorted(d.asset_key.to_user_string() for d in spec.deps),
            "group": spec.group_name,
            "kinds": sorted(spec.kinds),
            "partitions": str(spec.partitions_def) if spec.partitions_def else None,
            "lake_table": spec.metadata.get(LAKE_TABLE),
            "checks": sorted(({"name": c.name, "blocking": c.blocking} for c in checks), key=lambda c: c["name"]),
        }
        mapped = {d.asset_key.to_user_string(): _mapping(d.partition_mapping) for d in spec.deps if d.partition_mapping}
        if mapped:  # deps on other days than the partition's own (pipelines/layers/order.py)
            assets[spec.key.to_user_string()]["partition_mappings"] = dict(sorted(mapped.items()))
    jobs = {}
    for unresolved in defs.jobs:
        job = defs.resolve_job_def(unresolved.name)
        jobs[job.name] = {
            "selection": str(unresolved.selection),
            "executor": job.executor_def.name,
            "partitions": str(job.partitions_def),
        }
    schedules = {}
    for unresolved in defs.schedules:
        schedule = defs.resolve_schedule_def(unresolved.name)
        schedules[schedule.name] = {
            "cron": schedule.cron_schedule,
            "timezone": schedule.execution_timezone,
            "job": schedule.job_name,
        }
    return {"assets": dict(sorted(assets.items())), "jobs": jobs, "schedules": schedules}


def _mapping(mapping: dg.PartitionMapping) -> str:
    """A time-window mapping as `days <first>..<last>` relative to the partition day, others as their repr."""
    if isinstance(mapping, dg.TimeWindowPartitionMapping):
        missing_ok = ", missing ok" if mapping.allow_nonexistent_upstream_partitions else ""
        return f"days {mapping.start_offset}..{mapping.end_offset}{missing_ok}"
    return repr(mapping)


def _dump(snapshot: dict) -> str:
    return json.dumps(snapshot, indent=2, sort_keys=True) + "\n"


def test_the_graph_matches_its_snapshot():
    current = _dump(graph_snapshot(build_definitions(load_map(DEFAULT_MAP_PATH))))
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), f"no snapshot yet: create it with `{REGENERATE}`"
    pinned = SNAPSHOT.read_text()
    diff = "".join(
        difflib.unified_diff(
            pinned.splitlines(True), current.splitlines(True), f"{SNAPSHOT.name} (pinned)", "current graph"
        )
    )
    assert not diff, f"the asset graph changed:\n{diff}\nIf the change is intended, regenerate with `{REGENERATE}`"


def test_dagster_definitions_validate_passes(tmp_path):
    """The code location of pyproject.toml's [tool.dagster] loads as `dagster dev` would load it."""
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("PYRAMID_MAP", None)
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful" in done.stdout + done.stderr


def test_every_catalog_view_reads_tables_of_assets():
    pyramid_map = load_map(DEFAULT_MAP_PATH)
    writers = table_assets(build_assets(pyramid_map))
    assert sorted(set(catalog_tables(pyramid_map)) - set(writers)) == []
    assert len(set(writers.values())) == len(writers)  # one asset per table, one table per asset


def test_every_table_asset_reports_its_rows_and_schema_every_day(run):
    """In the small Dagster run, each asset that writes a lake table (the quarantine, the column status,
    goal_user_outcomes and north_star_contributions included) materializes every day with its row count,
    column schema, path and preview; the row count is the file's, less what erasure removed after."""
    tables = {key.to_user_string(): table for table, key in table_assets(build_assets(run.pyramid_map)).items()}
    assert {"quarantine_events", "column_status_profiles", "goal_user_outcomes", "north_star_contributions"} <= set(
        tables
    )
    for day, result in run.results.items():
        materialized = {
            e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        assert set(tables) <= set(materialized), day
        for key, table in tables.items():
            metadata = materialized[key]
            assert {"dagster/row_count", "dagster/column_schema", "path", "preview"} <= set(metadata), key
            layer, name = table.split("/")
            rows = pq.read_metadata(run.lake.partition_file(layer, name, day)).num_rows
            reported = metadata["dagster/row_count"].value
            # erasure rewrites the day's raw and cleaned rows after they are reported, and later days' erasures
            # rewrite earlier days; the column status holds no user and is never rewritten
            rewritable = not name.startswith("column_status_") and (
                layer == "raw" or key.startswith(("actionable_", "quarantine_")) or day != run.days[-1]
            )
            assert reported >= rows if rewritable else reported == rows, (key, day)


def _custom_map(tmp_path: Path) -> Path:
    """The project's map with its events landing elsewhere."""
    text = DEFAULT_MAP_PATH.read_text()
    assert text.count('path: "landing/events/{ds}/*.jsonl"') == 1
    custom = tmp_path / "custom.yaml"
    custom.write_text(text.replace('path: "landing/events/{ds}/*.jsonl"', 'path: "elsewhere/events/{ds}/*.jsonl"'))
    return custom


def test_a_custom_maps_graph_runs_that_map(tmp_path, monkeypatch):
    """$PYRAMID_MAP names the project's map, the graph is built from another: the run reads the
    landing files where the graph's map says they are."""
    monkeypatch.setenv("PYRAMID_MAP", str(DEFAULT_MAP_PATH))
    custom = load_map(_custom_map(tmp_path))
    day = custom.start_date
    landing = tmp_path / "elsewhere" / "events" / day.isoformat()
    landing.mkdir(parents=True)
    (landing / "part.jsonl").write_text('{"event_id": "e1"}\n{"event_id": "e2"}\n')
    defs = build_definitions(custom, PyramidResource(data_root=str(tmp_path)))
    result = defs.resolve_job_def(NIGHTLY_JOB).execute_in_process(
        partition_key=day.isoformat(),
        asset_selection=[dg.AssetKey("raw_events")],
        instance=dg.DagsterInstance.ephemeral(),
        run_config=QUIET,
    )
    assert result.success
    table = pq.read_table(Lake(tmp_path).partition_file("raw", "events", day))
    assert table.column("_source_file").to_pylist() == [f"elsewhere/events/{day}/part.jsonl"] * 2


def test_a_resource_naming_another_map_is_refused(tmp_path):
    custom = load_map(_custom_map(tmp_path))
    with pytest.raises(ValueError, match="a run must use the map its graph was built from"):
        build_definitions(custom, PyramidResource(map_path=str(DEFAULT_MAP_PATH)))
    same = build_definitions(custom, PyramidResource(map_path=str(custom.path)))
    assert same.resources["pyramid"].map_path == str(custom.path.resolve())
