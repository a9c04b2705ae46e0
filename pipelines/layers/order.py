"""Dependencies on earlier days, declared to Dagster: a table built on its own previous day, or reading a
window of days of another table, says so through a `TimeWindowPartitionMapping`. A backfill then runs
the days in order, and a re-materialized day marks the later days that read it stale."""

import warnings

import dagster as dg


def days_dep(key: str, first: int, last: int) -> dg.AssetDep:
    """`key`'s partitions from `first` to `last` days relative to the partition day (0: the same day).
    Days before the program's start do not exist and are not waited for."""
    with warnings.catch_warnings():  # allow_nonexistent_upstream_partitions is marked beta in Dagster 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)
        mapping = dg.TimeWindowPartitionMapping(
            start_offset=first, end_offset=last, allow_nonexistent_upstream_partitions=True
        )
    return dg.AssetDep(key, partition_mapping=mapping)


def previous_day(key: str) -> dg.AssetDep:
    """The day before: a table that builds on its previous partition (or reads another's)."""
    return days_dep(key, -1, -1)


def trailing_days(key: str, days: int) -> dg.AssetDep | str:
    """The `days` days ending on the partition day (a plain same-day dependency for one day)."""
    return days_dep(key, -(days - 1), 0) if days > 1 else key


def earlier_days(key: str, days: int) -> list[dg.AssetDep]:
    """The `days` days before the partition day (none for 0)."""
    return [days_dep(key, -days, -1)] if days > 0 else []
