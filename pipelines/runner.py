"""Materialize the nightly job for a list of days, in order, in this process, with progress."""

from __future__ import annotations

import time
from datetime import date

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from assets.lake import Lake
from pipelines.locks import RunLocked, hold_days

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def run_days(days: list[date], console: Console) -> bool:
    """Run the whole pyramid for each day; stop at the first failed day. True when all succeeded."""
    try:
        locks = hold_days(Lake.default().root, days)  # a second run of a day in progress is refused
    except RunLocked as err:
        console.print(f"[red]refused:[/red] {err}")
        return False
    from pipelines.definitions import NIGHTLY_JOB, defs

    job = defs.resolve_job_def(NIGHTLY_JOB)
    instance = dg.DagsterInstance.get()
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with locks, Progress(*columns, console=console) as progress:
        task = progress.add_task("pyramid", total=len(days))
        for day in days:
            progress.update(task, description=f"materializing {day}")
            started = time.perf_counter()
            result = job.execute_in_process(
                partition_key=day.isoformat(), instance=instance, raise_on_error=False, run_config=QUIET
            )
            seconds = time.perf_counter() - started
            if not result.success:
                progress.stop()
                _report_failure(result, day, console)
                return False
            progress.console.print(_day_line(day, result, seconds))
            progress.advance(task)
    return True


def _day_line(day: date, result: dg.ExecuteInProcessResult, seconds: float) -> str:
    meta = _metadata_by_asset(result)
    events = meta.get("actionable_events", {})
    warnings = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    ns = meta.get("north_star_series", {}).get("value")
    parts = [
        f"[green]ok[/green] {day} {seconds:5.1f}s",
        f"events {events.get('raw_rows', 0):,} → {events.get('actionable_rows', 0):,}",
        f"(quarantined {events.get('quarantined_rows', 0):,}, duplicates {events.get('duplicates_removed', 0):,})",
    ]
    if ns is not None:
        parts.append(f"north star {ns:.3f}")
    if warnings:
        parts.append(f"[yellow]warned: {', '.join(sorted(set(warnings)))}[/yellow]")
    return "  ".join(parts)


def _metadata_by_asset(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    metadata: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        metadata[materialization.asset_key.to_user_string()] = {
            key: getattr(value, "value", value) for key, value in materialization.metadata.items()
        }
    return metadata


def _report_failure(result: dg.ExecuteInProcessResult, day: date, console: Console) -> None:
    console.print(f"[red]the pyramid failed for {day}[/red]; nothing after the failed step was written.")
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            message = error.cause.message if error and error.cause else (error.message if error else "")
            console.print(f"  step [bold]{event.step_key}[/bold]: {message.strip()}")
