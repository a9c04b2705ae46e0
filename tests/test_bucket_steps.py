"""The goal step's buckets as Dagster steps (pipelines/layers/goals.py, docs/scaling.md): the shared run's last day
re-run with the multiprocess executor and 3 buckets writes the tables of an in-process run with 1 bucket, each
bucket ran as a step of its own, and no per-user part is left behind or handed to Dagster's IO manager."""

import shutil
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.buckets import BUCKETS_ENV
from assets.lake import DATA_ROOT_ENV, Lake
from assets.pyramid_map import load_map
from pipelines.definitions import EXECUTOR_ENV, MAX_CONCURRENT_ENV, NIGHTLY_JOB, build_definitions, nightly_executor
from pipelines.runner import QUIET
from tests.test_buckets import BUCKETED, COMPARED, assert_same_tables

BUCKETS = 3


def nightly_job() -> dg.JobDefinition:
    """The project map's nightly job, rebuilt in each step's process from the environment (data root, executor)."""
    return build_definitions(load_map()).resolve_job_def(NIGHTLY_JOB)


def _copy_lake(run, tmp_path_factory, name: str) -> Lake:
    lake = Lake(tmp_path_factory.mktemp(name))
    shutil.copytree(run.lake.root / "lake", lake.root / "lake")
    return lake


def test_executor_setting(monkeypatch):
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    assert nightly_executor() is dg.in_process_executor
    monkeypatch.setenv(EXECUTOR_ENV, "multiprocess")
    monkeypatch.setenv(MAX_CONCURRENT_ENV, "3")
    executor = nightly_executor()
    config = executor.config_schema.resolve_config({}).value
    assert executor.name == "multiprocess" and config.get("config", config)["max_concurrent"] == 3
    for name, bad in ((MAX_CONCURRENT_ENV, "0"), (MAX_CONCURRENT_ENV, "many"), (EXECUTOR_ENV, "k8s")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=name):
            nightly_executor()


@pytest.fixture(scope="module")
def bucket_runs(run, tmp_path_factory):
    """The last day's goal and North Star steps: in process with 1 bucket, and multiprocess with 3."""
    day = run.days[-1].isoformat()
    selection = [dg.AssetKey(key) for _layer, key in BUCKETED]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(BUCKETS_ENV, "1")
        one = _copy_lake(run, tmp_path_factory, "steps_1")
        patch.setenv(DATA_ROOT_ENV, str(one.root))
        job = build_definitions(run.pyramid_map).resolve_job_def(NIGHTLY_JOB)
        result = job.execute_in_process(
            partition_key=day, instance=dg.DagsterInstance.ephemeral(), run_config=QUIET, asset_selection=selection
        )
        assert result.success
        many = _copy_lake(run, tmp_path_factory, f"steps_{BUCKETS}")
        for name, value in ((BUCKETS_ENV, BUCKETS), (DATA_ROOT_ENV, many.root), (EXECUTOR_ENV, "multiprocess")):
            patch.setenv(name, str(value))
        patch.setenv(MAX_CONCURRENT_ENV, str(BUCKETS))
        with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster_home"))) as instance:
            with dg.execute_job(
                dg.reconstructable(nightly_job),
                instance=instance,
                run_config=QUIET,
                tags={"dagster/partition": day},
                asset_selection=selection,
            ) as result:
                assert result.success
                steps = {e.step_key: e.pid for e in result.get_step_success_events()}
            yield one, many, steps, Path(instance.storage_directory())


@pytest.mark.parametrize(("layer", "table"), COMPARED)
def test_multiprocess_buckets_write_the_tables_of_one_bucket(bucket_runs, layer, table):
    one, many, _steps, _stored = bucket_runs
    assert_same_tables(one, many, layer, table)


def test_each_bucket_is_a_step_of_its_own_process(bucket_runs):
    _one, _many, steps, _stored = bucket_runs
    buckets = [f"goal_metrics.goal_bucket[{b}]" for b in range(BUCKETS)]
    assert {"goal_metrics.goal_buckets", *buckets, "goal_metrics.goal_collect"} <= set(steps)
    assert len({steps[key] for key in buckets}) == BUCKETS  # the multiprocess executor: one process per step


def test_no_per_user_part_is_left_or_stored_by_dagster(bucket_runs, run):
    one, many, _steps, storage = bucket_runs
    assert one.scratch_files() == [] and many.scratch_files() == []
    cohort = pq.read_table(many.partition_file("goals", "goal_cohort", run.days[-1]))
    users = {user.encode() for user in cohort.column("user_id").to_pylist()}
    handed = [p for p in storage.rglob("*") if p.is_file()]
    assert users and handed  # the buckets' handles went through the IO manager's files
    for path in handed:
        data = path.read_bytes()
        assert not any(user in data for user in users), path
