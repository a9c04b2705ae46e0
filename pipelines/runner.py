"""Materialize the nightly job for a list of days, in order, in this process, with progress."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from assets.pyramid_map import NOT_DECLARED_NOTE
from pipelines.errors import Failure, step_failures
from pipelines.instance import run_instance
from pipelines.locks import RunLocked, hold_days
from pipelines.status import DATA_ROOT_TAG

if TYPE_CHECKING:
    from upath import UPath

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# the CLI reports a failed step itself (pipelines/errors.py): Dagster's own ERROR line carries the whole trace
SILENT = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def run_days(days: list[date], console: Console, data_root: Path | UPath) -> Failure | None:
    """Run the whole pyramid for each day; stop at the first failed day and return its first failed step.

    Each run is tagged with its data root, so that `pyramid status` tells this root's runs from others'.
    A day already being run by another process on this machine is refused (pipelines/locks.py)."""
    try:
        locks = hold_days(data_root, days)
    except RunLocked as err:
        return Failure(days[0] if days else None, None, "RunLocked", str(err), "")
    from pipelines.definitions import NIGHTLY_JOB, defs

    job = defs.resolve_job_def(NIGHTLY_JOB)
    instance = run_instance()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with locks, Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("pyramid", total=len(days))
        for day in days:
            progress.update(task, description=f"materializing {day}")
            started = time.perf_counter()
            result = job.execute_in_process(
                partition_key=day.isoformat(),
                instance=instance,
                raise_on_error=False,
                run_config=SILENT,
                tags={DATA_ROOT_TAG: str(data_root)},
            )
            seconds = time.perf_counter() - started
            if not result.success:
                progress.stop()
                failures = step_failures(result, day)
                return failures[0] if failures else Failure(day, None, "RunFailure", "the run failed", "")
            progress.console.print(_day_line(day, result, seconds), soft_wrap=True)
            progress.advance(task)
    return None


def _day_line(day: date, result: dg.ExecuteInProcessResult, seconds: float) -> str:
    meta = _metadata_by_asset(result)
    warnings = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    ns = meta.get("north_star_series", {}).get("value")
    parts = [f"[green]ok[/green] {day} {seconds:5.1f}s", *_activity_counts(meta)]
    if ns is not None:
        parts.append(f"north star {ns:.3f}")
    if warnings:
        parts.append(f"[yellow]warned: {', '.join(sorted(set(warnings)))}[/yellow]")
    return "  ".join(parts)


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


def _metadata_by_asset(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    metadata: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata[materialization.asset_key.to_user_string()] = {
            key: getattr(value, "value", value) for key, value in materialization.metadata.items()
        }
    return metadata
