"""Ranged runs (pipelines/layers/ranges.py, pipelines/runner.py): the sample's days run in chunks of days per
Dagster run give the tables pinned from one-day runs, each day's own materialization metadata and check verdicts
as the one-day runs of the shared `run` fixture recorded them, and `pyramid status` per day."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest

from assets.lake import Lake
from assets.pyramid_map import load_map
from pipelines import status
from pipelines.definitions import NIGHTLY_JOB, build_definitions
from pipelines.layers.ranges import BACKFILL_POLICY, FAILED_DAYS_KEY, merged_check
from pipelines.resources import PyramidResource
from pipelines.runner import QUIET, erasure_request_days, plan_runs, range_tags
from pipelines.sample.generate import generate_sample
from tests.pyramid_run import AS_RUN_TABLES, DAYS, SEED, USERS, write_full_days
from tests.test_pinned_outputs import PINNED, table_digest

D = date(2026, 10, 1)


def days(first: int, last: int) -> list[date]:
    return [D + timedelta(days=n) for n in range(first, last + 1)]


def test_days_are_cut_into_runs_of_at_most_the_setting_and_a_request_day_runs_alone():
    assert plan_runs(days(0, 9), set(), 4) == [days(0, 3), days(4, 7), days(8, 9)]
    assert plan_runs(days(0, 9), {D + timedelta(days=4)}, 7) == [days(0, 3), days(4, 4), days(5, 9)]
    assert plan_runs(days(0, 2), {D}, 7) == [days(0, 0), days(1, 2)]
    assert plan_runs(days(0, 5), set(), 1) == [[d] for d in days(0, 5)]
    # days that are not consecutive never share a run
    assert plan_runs([D, D + timedelta(days=2), D + timedelta(days=3)], set(), 7) == [[D], days(2, 3)]
    assert plan_runs([], set(), 7) == []


def test_a_merged_check_fails_when_any_day_failed_and_shows_the_first_failing_day():
    def result(passed: bool, n: int) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            check_name="c",
            passed=passed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"n": n},
            description=None if passed else f"{n} bad rows",
        )

    merged = merged_check([(d, result(n != 1 and n != 2, n)) for n, d in enumerate(days(0, 3))], None, "c")
    assert not merged.passed and merged.severity == dg.AssetCheckSeverity.WARN
    assert merged.metadata["n"].value == 1 and merged.description == f"{D + timedelta(days=1)}: 1 bad rows"
    assert merged.metadata[FAILED_DAYS_KEY].value == f"{D + timedelta(days=1)}, {D + timedelta(days=2)}"
    assert merged.metadata["days"].value == f"{D} to {D + timedelta(days=3)}"
    passed = merged_check([(d, result(True, n)) for n, d in enumerate(days(0, 1))], None, "c")
    assert passed.passed and passed.metadata["n"].value == 1 and passed.metadata[FAILED_DAYS_KEY].value == "none"
    assert status.FAILED_DAYS_KEY == FAILED_DAYS_KEY  # pyramid status reads it without importing dagster


def test_every_asset_backfills_in_chunks_of_days():
    from pipelines.definitions import defs

    assert defs.assets and all(a.backfill_policy == BACKFILL_POLICY for a in defs.assets)
    assert BACKFILL_POLICY.max_partitions_per_run == 7


@pytest.fixture(scope="module")
def ranged(tmp_path_factory):
    """The shared run's sample (tests/pyramid_run.py) run again in chunks of at most 4 days per Dagster run."""
    root = tmp_path_factory.mktemp("ranged")
    pyramid_map = load_map()
    generate_sample(root / "landing", users=USERS, days=DAYS, seed=SEED, pyramid_map=pyramid_map)
    job = build_definitions(pyramid_map, PyramidResource(data_root=str(root))).resolve_job_def(NIGHTLY_JOB)
    home = tmp_path_factory.mktemp("ranged_dagster_home")
    instance = dg.DagsterInstance.local_temp(tempdir=str(home))
    run_days = days(0, DAYS - 1)
    chunks = plan_runs(run_days, erasure_request_days(Lake(root), pyramid_map, run_days), 4)
    results = []
    for chunk in chunks:
        tags = {status.DATA_ROOT_TAG: str(root), **(range_tags(chunk) if len(chunk) > 1 else {})}
        options = {} if len(chunk) > 1 else {"partition_key": chunk[0].isoformat()}
        results.append(job.execute_in_process(instance=instance, run_config=QUIET, tags=tags, **options))
    return {"root": root, "home": home, "map": pyramid_map, "chunks": chunks, "results": results}


def test_the_sample_is_run_in_chunks_cut_at_its_erasure_requests(ranged):
    # the generator plants the first weekly batch of erasure requests on the middle day (pipelines/sample)
    assert ranged["chunks"] == [days(0, 3), days(4, 4), days(5, 7)]
    assert all(result.success for result in ranged["results"])


def test_chunks_of_days_give_the_tables_pinned_from_one_run_a_day(ranged, tmp_path):
    lake, as_run = Lake(ranged["root"]), Lake(tmp_path)
    for layer, table in AS_RUN_TABLES:
        write_full_days(lake, layer, table, as_run)
        columns, digest = PINNED[table]
        assert table_digest(as_run, layer, table, columns) == digest, table


def test_each_day_keeps_its_own_metadata_and_check_verdicts(ranged, run):
    ranged_rows, ranged_failed = _per_day(ranged["results"])
    daily_rows, daily_failed = _per_day(run.results.values())
    assert ranged_rows == daily_rows
    assert len({n for (asset, _), n in ranged_rows.items() if asset == "raw_events"}) == DAYS  # differ by day
    assert ranged_failed == daily_failed


def test_status_shows_every_day_of_a_ranged_run(ranged, run):
    found = status.collect(Lake(ranged["root"]), ranged["map"], ranged["home"], default_root=ranged["root"])
    _, failed = _per_day(run.results.values())  # the checks each day failed, as the one-run-a-day fixture recorded
    assert [d["state"] for d in found["days"]] == ["ok"] * DAYS
    by_day = {d["day"]: d for d in found["days"]}
    assert by_day[str(D)]["run_id"] == ranged["results"][0].run_id == by_day[str(D + timedelta(days=3))]["run_id"]
    for day in days(0, DAYS - 1):
        checks = {(c["asset"], c["check"]) for c in by_day[str(day)]["checks"]}
        assert checks == {(asset, check) for asset, check, failed_day in failed if failed_day == day}


def _per_day(results) -> tuple[dict, set]:
    """({(asset, day): its row count}, {(asset, check, day) that did not pass}) over one-day or ranged runs."""
    rows, failed = {}, set()
    for result in results:
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            count = materialization.metadata.get("dagster/row_count")
            key = (materialization.asset_key.to_user_string(), date.fromisoformat(materialization.partition))
            rows[key] = None if count is None else count.value
        for evaluation in result.get_asset_check_evaluations():
            if evaluation.passed:
                continue
            on = evaluation.metadata.get(FAILED_DAYS_KEY)
            for day in _failed_days(result, on):
                failed.add((evaluation.asset_key.to_user_string(), evaluation.check_name, day))
    return rows, failed


def _failed_days(result, on) -> list[date]:
    if on is None:  # a run of one day
        return [date.fromisoformat(result.dagster_run.tags["dagster/partition"])]
    return [date.fromisoformat(d) for d in on.value.split(", ")]
