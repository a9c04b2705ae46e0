"""Ranged runs: one Dagster run materializes a chunk of days (a backfill, `pyramid run` over a range).

Every asset body is written for one day. `each_day` runs it for each day of a ranged run, in day order, step by
step: a step finishes the whole chunk before the next starts, which the declared dependencies on earlier days
(pipelines/layers/order.py) make safe. Each day keeps its own materialization metadata (Dagster's
per-partition asset metadata); a check gets one result per run, so a ranged run reports each check once,
failed when it failed on any day, naming those days (`failed_days`) and showing the first failing day's
metadata. A run of one day is the body's own result, unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from typing import Any

import dagster as dg

DAYS_KEY = "days"  # check metadata of a ranged run: the days it judged
FAILED_DAYS_KEY = "failed_days"  # check metadata of a ranged run: the days it failed on ("none")
MAX_DAYS_PER_RUN = 7  # a Dagster backfill's chunk (BACKFILL_POLICY); `pyramid run` reads its own setting


BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_DAYS_PER_RUN)


def days_of_run(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> list[date]:
    """The days a run materializes, in order (one for a nightly run)."""
    return sorted(date.fromisoformat(key) for key in context.partition_keys)


def is_ranged(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> bool:
    return context.has_partition_key_range and len(context.partition_keys) > 1


class DayContext:
    """The run's context seen as a run of one of its days: `partition_key` is that day, the rest is the run's."""

    def __init__(self, context: Any, day: date) -> None:
        self._context = context
        self.partition_key = day.isoformat()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def each_day(body: Callable) -> Callable:
    """An asset body written for one day, run for each day of a ranged run (module docstring)."""

    def every_day(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Iterator:
        by_day = {day: list(_results(body(DayContext(context, day), *args, **kwargs))) for day in days_of_run(context)}
        return merged_results(context, by_day)

    if inspect.isgeneratorfunction(body):  # Dagster reads a generator's outputs from its yields, not its annotation

        @functools.wraps(body)
        def run_generator(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Iterator:
            yield from every_day(context, *args, **kwargs) if is_ranged(context) else body(context, *args, **kwargs)

        return run_generator

    @functools.wraps(body)
    def run(context: dg.AssetExecutionContext, *args: Any, **kwargs: Any) -> Any:
        return every_day(context, *args, **kwargs) if is_ranged(context) else body(context, *args, **kwargs)

    return run


def _results(returned: Any) -> Iterable:
    if returned is None:
        return []
    if isinstance(returned, (dg.MaterializeResult, dg.AssetCheckResult)):
        return [returned]
    return returned


def merged_results(context: dg.AssetExecutionContext, by_day: dict[date, list]) -> Iterator:
    """One MaterializeResult per asset, its metadata per day, and each check's results merged (`merged_check`)."""
    keys: list[dg.AssetKey | None] = []
    checks: dict[tuple, list[tuple[date, dg.AssetCheckResult]]] = {}
    for day, results in by_day.items():
        for result in results:
            if isinstance(result, dg.AssetCheckResult):
                checks.setdefault((result.asset_key, result.check_name), []).append((day, result))
                continue
            if result.asset_key not in keys:
                keys.append(result.asset_key)
            context.add_asset_metadata(dict(result.metadata or {}), asset_key=result.asset_key, partition_key=str(day))
            for check in result.check_results or []:
                key = check.asset_key or result.asset_key
                checks.setdefault((key, check.check_name), []).append((day, check))
    for key in keys:
        yield dg.MaterializeResult(asset_key=key)
    for (key, name), results in checks.items():
        yield merged_check(results, key, name)


def merged_check(
    results: list[tuple[date, dg.AssetCheckResult]], asset_key: dg.AssetKey | None, check_name: str | None
) -> dg.AssetCheckResult:
    """A check's results over the days of a run: passed when every day passed; the first failing day's (else the
    last day's) metadata, severity and description, with the days judged and the days failed."""
    failed = [(day, result) for day, result in results if not result.passed]
    day, shown = failed[0] if failed else results[-1]
    metadata = {
        **dict(shown.metadata or {}),
        DAYS_KEY: f"{results[0][0]} to {results[-1][0]}",
        FAILED_DAYS_KEY: ", ".join(str(d) for d, _ in failed) or "none",
    }
    description = f"{day}: {shown.description}" if failed and shown.description else shown.description
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=not failed,
        severity=shown.severity,
        metadata=metadata,
        description=description,
    )
