"""What `pyramid import` shows: the export's files, a progress bar over their bytes, the count per day."""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from assets.pyramid_map import PyramidMap
from pipelines.history_import import SHOWN_UNPLACED, ImportResult

DAYS_SHOWN = 31  # beyond, the counts are shown per month


def export_files(patterns: list[str]) -> list[Path]:
    """The files named or matched by the patterns, each once, in the order given (a glob's matches sorted)."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        found.update((Path(m), None) for m in matches if Path(m).is_file())
    return list(found)


@contextmanager
def bytes_progress(console: Console, files: list[Path], description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar over the files' bytes (on a terminal only); yields `advance(bytes)`."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=sum(p.stat().st_size for p in files))
        yield lambda done: progress.advance(task, done)


def print_import(console: Console, errors: Console, result: ImportResult, pyramid_map: PyramidMap, source: str) -> None:
    """The rows landed per day, the total, the records without a day (file:line), and what to run next."""
    days = sorted(result.rows_per_day)
    for line in _counts(result.rows_per_day):
        console.print(line, highlight=False)
    total = sum(result.rows_per_day.values())
    console.print(
        f"[green]imported[/green] {total:,} {source} rows into {len(days)} landing days ({days[0]} .. {days[-1]})"
    )
    if result.unplaced:
        _print_unplaced(errors, result)
    gaps = (days[-1] - days[0]).days + 1 - len(days)
    if gaps and pyramid_map.sources[source].required:
        errors.print(
            Text(
                f"warning: {gaps} days between {days[0]} and {days[-1]} have no {source} record; a required source "
                "stops a day without a landing file (`pyramid check` lists them)",
                style="yellow",
            ),
            soft_wrap=True,
        )
    if days[0] < pyramid_map.start_date:
        errors.print(
            Text(
                f"warning: the map's schedule.start_date is {pyramid_map.start_date}: days before it are never read; "
                f"set it to {days[0]} to replay them",
                style="yellow",
            )
        )
    console.print(f"then: pyramid run --start {max(days[0], pyramid_map.start_date)} --end {days[-1]}", highlight=False)


def _counts(rows_per_day: dict[date, int]) -> list[str]:
    """A line per day, or per month when there are more days than a month has."""
    if len(rows_per_day) <= DAYS_SHOWN:
        return [f"  {day}  {rows:>10,} rows" for day, rows in sorted(rows_per_day.items())]
    months: dict[str, list[int]] = {}
    for day, rows in sorted(rows_per_day.items()):
        months.setdefault(day.isoformat()[:7], []).append(rows)
    return [f"  {month}  {sum(rows):>10,} rows on {len(rows):>2} days" for month, rows in months.items()]


def _print_unplaced(errors: Console, result: ImportResult) -> None:
    count = len(result.unplaced)
    lines = [
        f"warning: {count:,} records have no event time (a timestamp with an offset) and were not landed; "
        f"kept as they were in {result.unplaced_path}:",
        *(f"  {file}:{line}" for file, line in result.unplaced[:SHOWN_UNPLACED]),
    ]
    if count > SHOWN_UNPLACED:
        lines.append(f"  ... and {count - SHOWN_UNPLACED:,} more")
    errors.print(Text("\n".join(lines), style="yellow"), soft_wrap=True)
