"""Materialize the nightly job for a list of days, in order, in this process, with progress."""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from assets.lake import Lake, connect
from assets.pyramid_map import NOT_DECLARED_NOTE, PyramidMap
from assets.raw import land
from pipelines.errors import Failure, step_failures
from pipelines.instance import run_instance
from pipelines.layers.ranges import FAILED_DAYS_KEY, MAX_DAYS_PER_RUN
from pipelines.locks import RunLocked, hold_days
from pipelines.status import DATA_ROOT_TAG, RANGE_END_TAG, RANGE_START_TAG

if TYPE_CHECKING:
    from upath import UPath

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# the CLI reports a failed step itself (pipelines/errors.py): Dagster's own ERROR line carries the whole trace
SILENT = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
DAYS_PER_RUN_ENV = "PYRAMID_DAYS_PER_RUN"


def run_days(days: list[date], console: Console, data_root: Path | UPath) -> Failure | None:
    """Run the whole pyramid for each day; stop at the first failed day and return its first failed step.

    Consecutive days run in chunks, one Dagster run each (`plan_runs`); a chunk that fails runs again a day per run
    from its first day, so that the failure names its day and the days before it finish.
    Each run is tagged with its data root, so that `pyramid status` tells this root's runs from others'.
    A day already being run by another process on this machine is refused (pipelines/locks.py)."""
    try:
        locks = hold_days(data_root, days)
    except RunLocked as err:
        return Failure(days[0] if days else None, None, "RunLocked", str(err), "")
    from pipelines.definitions import NIGHTLY_JOB, defs

    job = defs.resolve_job_def(NIGHTLY_JOB)
    pyramid = defs.resources["pyramid"]
    most = days_per_run()
    alone = erasure_request_days(pyramid.lake(), pyramid.pyramid_map(), days) if most > 1 else set()
    chunks = plan_runs(days, alone, most)
    runner = _Runner(job, run_instance(), {DATA_ROOT_TAG: str(data_root)})
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with locks, Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("pyramid", total=len(days))
        for chunk in chunks:
            shown = f"{chunk[0]}" if len(chunk) == 1 else f"{chunk[0]} to {chunk[-1]}"
            progress.update(task, description=f"materializing {shown}")
            result, seconds = runner.run(chunk)
            if result.success:
                for day in chunk:
                    progress.console.print(_day_line(day, result, seconds / len(chunk), len(chunk) > 1), soft_wrap=True)
                progress.advance(task, len(chunk))
                continue
            failure = _run_alone(runner, chunk, progress, task) if len(chunk) > 1 else _failure_of(result, chunk[0])
            if failure is not None:
                progress.stop()
                return failure
    return None


def _run_alone(runner: _Runner, days: list[date], progress: Progress, task: TaskID) -> Failure | None:
    """Days run one per Dagster run, in order; the first failed day's first failed step."""
    for day in days:
        progress.update(task, description=f"materializing {day}")
        result, seconds = runner.run([day])
        if not result.success:
            return _failure_of(result, day)
        progress.console.print(_day_line(day, result, seconds, False), soft_wrap=True)
        progress.advance(task)
    return None


def _failure_of(result: dg.ExecuteInProcessResult, day: date) -> Failure:
    failures = step_failures(result, day)
    return failures[0] if failures else Failure(day, None, "RunFailure", "the run failed", "")


class _Runner:
    """Runs the nightly job in this process for one day or a chunk of consecutive days."""

    def __init__(self, job: dg.JobDefinition, instance: dg.DagsterInstance, tags: dict[str, str]) -> None:
        self.job, self.instance, self.tags = job, instance, tags

    def run(self, days: list[date]) -> tuple[dg.ExecuteInProcessResult, float]:
        started = time.perf_counter()
        if len(days) == 1:
            options: dict = {"partition_key": days[0].isoformat(), "tags": self.tags}
        else:
            options = {"tags": {**self.tags, **range_tags(days)}}
        result = self.job.execute_in_process(instance=self.instance, raise_on_error=False, run_config=SILENT, **options)
        return result, time.perf_counter() - started


def range_tags(days: list[date]) -> dict[str, str]:
    """The tags of a Dagster run over consecutive days (a ranged run: pipelines/layers/ranges.py)."""
    return {RANGE_START_TAG: days[0].isoformat(), RANGE_END_TAG: days[-1].isoformat()}


def days_per_run() -> int:
    """`$PYRAMID_DAYS_PER_RUN`: the most consecutive days one Dagster run materializes (default 7; 1: a run a day)."""
    text = os.environ.get(DAYS_PER_RUN_ENV, "").strip() or str(MAX_DAYS_PER_RUN)
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{DAYS_PER_RUN_ENV} must be a whole number of days (1 or more), got {text!r}")
    return int(text)


def plan_runs(days: list[date], alone: set[date], most: int) -> list[list[date]]:
    """The days in order, cut into runs of consecutive days, at most `most` each; a day in `alone` (erasure
    requests land on it) is a run of its own: its erasure rewrites earlier days, which a chunk holding days
    before it would already have measured, and later ones, which would already have landed."""
    runs: list[list[date]] = []
    for day in days:
        last = runs[-1] if runs else None
        joins = last and len(last) < most and day not in alone and last[-1] not in alone
        if joins and day == last[-1] + timedelta(days=1):
            last.append(day)
        else:
            runs.append([day])
    return runs


def erasure_request_days(lake: Lake, pyramid_map: PyramidMap, days: list[date]) -> set[date]:
    """The days among `days` whose erasure request files hold a record (every day, when they cannot be read:
    the day's own run then reports the file)."""
    source = pyramid_map.sources.get("erasure_requests")
    if source is None:
        return set()
    con = connect()
    found = set()
    for day in days:
        try:
            if land(con, lake, source, day).num_rows:
                found.add(day)
        except Exception:  # noqa: BLE001 - any unreadable file: the day runs alone, and its run says why
            found.add(day)
    return found


def _day_line(day: date, result: dg.ExecuteInProcessResult, seconds: float, ranged: bool) -> str:
    meta = _metadata_by_asset(result, day)
    warnings = [e.check_name for e in result.get_asset_check_evaluations() if _warned_on(e, day)]
    ns = meta.get("north_star_series", {}).get("value")
    took = f"~{seconds:4.1f}s" if ranged else f"{seconds:5.1f}s"  # a chunk's time shared among its days
    parts = [f"[green]ok[/green] {day} {took}", *_activity_counts(meta)]
    if ns is not None:
        parts.append(f"north star {ns:.3f}")
    if warnings:
        parts.append(f"[yellow]warned: {', '.join(sorted(set(warnings)))}[/yellow]")
    return "  ".join(parts)


def _warned_on(evaluation: dg.AssetCheckEvaluation, day: date) -> bool:
    """Whether a check did not pass on `day` (a ranged run's check names the days it failed on)."""
    if evaluation.passed:
        return False
    failed_days = evaluation.metadata.get(FAILED_DAYS_KEY)
    return failed_days is None or day.isoformat() in str(getattr(failed_days, "value", failed_days))


def _activity_counts(meta: dict[str, dict]) -> list[str]:
    """Rows in and out of the actionable layer for the events (else the transactions) the map declares."""
    for source in ("events", "transactions"):
        counts = meta.get(f"actionable_{source}", {})
        if "raw_rows" in counts and counts.get("source") != NOT_DECLARED_NOTE:
            return [
                f"{source} {counts['raw_rows']:,} → {counts.get('actionable_rows', 0):,}",
                f"(quarantined {counts.get('quarantined_rows', 0):,}, "
                f"duplicates {counts.get('duplicates_removed', 0):,})",
            ]
    return []


def _metadata_by_asset(result: dg.ExecuteInProcessResult, day: date) -> dict[str, dict]:
    metadata: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.partition != day.isoformat():
            continue
        metadata[materialization.asset_key.to_user_string()] = {
            key: getattr(value, "value", value) for key, value in materialization.metadata.items()
        }
    return metadata
