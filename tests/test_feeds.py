"""Complete feeds or a clear stop (README "Missing and late feeds"), and days that depend on each other
declared to Dagster (pipelines/layers/order.py): a missing required file stops the day before anything is
written; the volume check judges a day against the median of the previous landed days; a file landing for
a day already processed is reported with the days to re-run; re-materializing a day marks later days stale."""

from __future__ import annotations

import os
import shutil
from datetime import date, timedelta

import dagster as dg
import pytest

from assets.feeds import judge_volume, late_files, rerun_advice
from assets.lake import Lake
from assets.landing import MissingFeedError, read_manifest, require_feeds
from assets.pyramid_map import Volume, load_map
from pipelines.definitions import NIGHTLY_JOB, build_definitions
from pipelines.layers.raw import LATE_CHECK, VOLUME_CHECK
from pipelines.resources import PyramidResource
from pipelines.runner import QUIET
from pipelines.sample.generate import generate_sample

RAW = [dg.AssetKey(f"raw_{s}") for s in ("events", "profiles", "transactions", "erasure_requests")]


@pytest.fixture(scope="module")
def pyramid():
    return load_map()


def _sample(tmp_path, pyramid, days: int, users: int = 300):
    generate_sample(tmp_path / "landing", users=users, days=days, seed=11, pyramid_map=pyramid)
    job = build_definitions(pyramid, PyramidResource(data_root=str(tmp_path))).resolve_job_def(NIGHTLY_JOB)
    return job, Lake(tmp_path), [pyramid.start_date + timedelta(days=n) for n in range(days)]


def _run(job, day: date, instance: dg.DagsterInstance, selection=None) -> dg.ExecuteInProcessResult:
    return job.execute_in_process(
        partition_key=day.isoformat(),
        instance=instance,
        asset_selection=selection,
        raise_on_error=False,
        run_config=QUIET,
    )


def _check(result: dg.ExecuteInProcessResult, asset: str, name: str) -> dg.AssetCheckEvaluation:
    [evaluation] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == name and e.asset_key == dg.AssetKey(asset)
    ]
    return evaluation


# --- the map -------------------------------------------------------------------------------------------


def test_the_map_declares_which_sources_must_land_and_their_volume(pyramid):
    sources = pyramid.sources
    assert {name: s.required for name, s in sources.items()} == {
        "events": True,
        "profiles": False,
        "transactions": True,
        "erasure_requests": False,
    }
    assert sources["events"].volume == Volume(tolerance=0.5, action="block", window_days=7, min_days=3)
    assert sources["transactions"].volume.action == "warn" and sources["erasure_requests"].volume is None


# --- a missing required file -----------------------------------------------------------------------


def test_a_missing_required_file_names_source_and_day(tmp_path, pyramid):
    day = pyramid.start_date
    (tmp_path / "landing" / "profiles" / day.isoformat()).mkdir(parents=True)
    (tmp_path / "landing" / "profiles" / day.isoformat() / "p.csv").write_text("user_id\n")
    with pytest.raises(MissingFeedError) as raised:
        require_feeds(Lake(tmp_path), pyramid.sources.values(), day)
    message = str(raised.value)
    assert f"landing day {day} is incomplete" in message and "Nothing was written" in message
    assert f"events (expected landing/events/{day}/*.jsonl" in message
    assert f"transactions (expected landing/transactions/{day}/*.csv" in message
    assert "profiles" not in message and "erasure_requests" not in message  # optional sources may skip a day


def test_a_day_without_its_events_file_stops_and_writes_nothing(tmp_path, pyramid):
    job, lake, days = _sample(tmp_path, pyramid, days=2)
    shutil.rmtree(lake.landing / "events" / days[1].isoformat())
    result = _run(job, days[1], dg.DagsterInstance.ephemeral())
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert {e.step_key for e in failures} == {k.path[0] for k in RAW}  # every raw step stops before writing
    for event in failures:
        message = event.step_failure_data.error.cause.message
        assert f"landing day {days[1]} is incomplete: no file for required source events" in message
    assert not result.get_asset_materialization_events()
    written = sorted(p.relative_to(lake.root).as_posix() for p in (lake.root / "lake").rglob(f"ds={days[1]}"))
    assert written == []


def test_an_optional_source_may_skip_a_day(tmp_path, pyramid):
    job, lake, days = _sample(tmp_path, pyramid, days=1)
    shutil.rmtree(lake.landing / "erasure_requests" / days[0].isoformat())
    result = _run(job, days[0], dg.DagsterInstance.ephemeral(), selection=RAW)
    assert result.success
    assert lake.has_partition("raw", "erasure_requests", days[0])
    assert read_manifest(lake, "erasure_requests", days[0]) == []


# --- volume ------------------------------------------------------------------------------------------


def test_volume_is_judged_against_the_trailing_median():
    volume = Volume(tolerance=0.5, action="warn", window_days=7, min_days=3)
    assert judge_volume(5, [100, 100], volume).passed  # too few days to judge
    assert judge_volume(5, [100, 100], volume).median is None
    verdict = judge_volume(140, [90, 100, 1000, 110], volume)
    assert (verdict.median, verdict.deviation, verdict.passed) == (105.0, pytest.approx(35 / 105), True)
    low = judge_volume(50, [90, 100, 110], volume)
    assert (low.deviation, low.passed) == (-0.5, True)  # on the tolerance is within it
    assert not judge_volume(49, [90, 100, 110], volume).passed
    assert not judge_volume(160, [90, 100, 110], volume).passed
    assert judge_volume(0, [0, 0, 0], volume).passed and not judge_volume(3, [0, 0, 0], volume).passed


def test_a_collapsed_feed_fails_the_blocking_volume_check(tmp_path, pyramid):
    job, lake, days = _sample(tmp_path, pyramid, days=4)
    instance = dg.DagsterInstance.ephemeral()
    for day in days[:3]:
        result = _run(job, day, instance, selection=RAW)
        assert _check(result, "raw_events", VOLUME_CHECK).passed, day  # day 1 to 3: not judged yet
    [path] = (lake.landing / "events" / days[3].isoformat()).glob("*.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 10]))
    check = _check(_run(job, days[3], instance, selection=RAW), "raw_events", VOLUME_CHECK)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["previous_landed_days"].value == 3 and check.metadata["deviation"].value < -0.8
    assert "beyond the tolerance of ±50%" in check.description
    defs = build_definitions(pyramid, PyramidResource(data_root=str(tmp_path)))
    graph = defs.resolve_asset_graph()
    blocking = {
        k.asset_key.to_user_string(): graph.get_check_spec(k).blocking
        for k in graph.asset_check_keys
        if k.name == VOLUME_CHECK
    }
    assert blocking == {"raw_events": True, "raw_profiles": False, "raw_transactions": False}


# --- late files --------------------------------------------------------------------------------------


def test_a_file_landing_for_a_processed_day_names_the_days_to_rerun(tmp_path, pyramid):
    job, lake, days = _sample(tmp_path, pyramid, days=3)
    instance = dg.DagsterInstance.ephemeral()
    for day in days[:2]:
        assert _check(_run(job, day, instance, selection=RAW), "raw_events", LATE_CHECK).passed
    [events] = (lake.landing / "events" / days[0].isoformat()).glob("*.jsonl")
    (events.parent / "events-late.jsonl").write_text(events.read_text().splitlines(keepends=True)[0])
    [txns] = (lake.landing / "transactions" / days[1].isoformat()).glob("*.csv")
    os.utime(txns, ns=(txns.stat().st_atime_ns, txns.stat().st_mtime_ns + 10**9))  # re-delivered

    result = _run(job, days[2], instance, selection=RAW)
    assert result.success  # a warning: the day itself is processed
    check = _check(result, "raw_events", LATE_CHECK)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["days_to_rerun"].value == str(days[0]) and check.metadata["late_files"].value == 1
    assert f"re-run from {days[0]} (`pyramid run --start {days[0]}`)" in check.description
    txn_check = _check(result, "raw_transactions", LATE_CHECK)
    assert txn_check.metadata["days_to_rerun"].value == str(days[1])
    assert _check(result, "raw_profiles", LATE_CHECK).passed

    assert late_files(lake, pyramid.sources["events"]) == {days[0]: [f"landing/events/{days[0]}/events-late.jsonl"]}
    assert _run(job, days[0], instance, selection=RAW).success  # re-landing the day records its files
    assert late_files(lake, pyramid.sources["events"]) == {}
    assert rerun_advice({}) == "no landing file arrived or changed for a day already processed"


# --- order in Dagster ----------------------------------------------------------------------------------


def test_earlier_days_resolve_through_the_partition_mappings(pyramid):
    graph = build_definitions(pyramid).resolve_asset_graph()
    day = pyramid.start_date + timedelta(days=9)

    def parents(child: str, parent: str, partition: date) -> list[str]:
        subset = graph.get_parent_partition_keys_for_child(
            partition.isoformat(), dg.AssetKey(parent), dg.AssetKey(child)
        ).partitions_subset
        return sorted(subset.get_partition_keys())

    def iso(*offsets: int, base: date = day) -> list[str]:
        return [(base + timedelta(days=n)).isoformat() for n in offsets]

    for table in ("actionable_profiles", "actionable_erased_users", "segment_membership", "goal_user_outcomes"):
        assert parents(table, table, day) == iso(-1), table
        assert parents(table, table, pyramid.start_date) == [], table  # the first day waits for nothing
    assert parents("actionable_events", "actionable_events", day) == iso(*range(-7, 0))
    assert parents("user_features", "user_daily", day) == iso(*range(-9, 1), base=day)  # 90 days, from the start
    assert parents("goal_metrics", "campaign_audiences", day) == iso(-1)
    assert parents("touchpoint_weekly_email", "touchpoint_weekly_email", day) == iso(*range(-6, 0))
    assert graph.toposorted_asset_keys  # no cycle besides self-dependencies
    assert parents("segment_summary", "segment_membership", day) == iso(-1, 0)
    assert parents("campaign_audiences", "segment_membership", day) == iso(0)


def test_rematerializing_a_day_marks_later_days_stale(pyramid):
    """Four days materialized in order, then day 2 again (e.g. after a late file): the later days that read
    it are stale, as the UI shows them (Dagster's stale-status resolver, not a public API). The
    materializations are reported to the instance without computing them, which is all the resolver reads."""
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._core.loader import LoadingContextForTest

    graph = build_definitions(pyramid).resolve_asset_graph()
    instance = dg.DagsterInstance.ephemeral()
    days = [(pyramid.start_date + timedelta(days=n)).isoformat() for n in range(4)]
    for day in [*days, days[1]]:
        for key in graph.toposorted_asset_keys:
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=day))
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))

    def stale(asset: str) -> list[int]:
        statuses = [resolver.get_status(dg.AssetKey(asset), day).value for day in days]
        assert set(statuses) <= {"FRESH", "STALE"}, statuses
        return [n + 1 for n, value in enumerate(statuses) if value == "STALE"]

    assert stale("user_daily") == []  # same-day inputs only
    assert stale("user_features") == [3, 4]  # user_daily over 90 days
    assert stale("segment_summary") == [3]  # compares with the day before
    # the audiences of the day before; user_daily over the late lookback and the CUPED pre-period
    assert stale("goal_user_outcomes") == [3, 4]
    assert stale("touchpoint_weekly_email") == [3, 4]  # frequency caps count the exports of 6 days
    causes = resolver.get_stale_causes(dg.AssetKey("user_features"), days[3])
    assert {(c.dependency.asset_key.to_user_string(), c.dependency.partition_key) for c in causes} == {
        ("user_daily", days[1])
    }
