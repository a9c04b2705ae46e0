"""One day of per-user goal work, bucket by bucket (docs/scaling.md, "Buckets").

The day's inputs are split by user bucket (`assets.buckets`); each bucket's per-user SQL (the day's outcomes,
the cohort's entrants and their CUPED covariate, the cohort's measured days) reads only that bucket's users.
The per-user tables of the buckets are stacked and sorted on their key, so they are the tables one bucket gives.
Two steps read the whole cohort, because they do not split by user: the time-to-event columns
(`time_to_event.with_event_days` takes the first activity day of the whole read) and, later, the Kaplan-Meier
estimator. The goal rows are computed from the buckets' summed statistics (`goals.cluster_counts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl
import pyarrow as pa

from assets import goal_cohort, goals, time_to_event
from assets.buckets import split
from assets.pyramid_map import Goal, Metric


@dataclass(frozen=True)
class GoalDayInputs:
    """What a goal run reads: audiences and exports as of ds - 1, the activity read on ds, yesterday's tables."""

    audiences_prev: pa.Table | None
    exports_prev: pa.Table | None
    activity: pa.Table
    touchpoints: pa.Table | None
    previous_cohort: pa.Table | None
    previous_outcomes: pa.Table | None
    signups: pa.Table | None = None


@dataclass(frozen=True)
class GoalDayTables:
    """The day's per-user tables: day outcomes, goal_cohort, goal_user_outcomes and the to-date state read on ds."""

    day_outcomes: pa.Table
    cohort: pa.Table
    settled: pa.Table
    read_on_ds: pa.Table


def measure_goal_day(
    inputs: GoalDayInputs,
    measured: Sequence[Goal],
    metrics: Mapping[str, Metric],
    ds: date,
    start: date,
    lookback: int,
    buckets: int = 1,
) -> GoalDayTables:
    """The day's per-user goal tables, computed bucket by bucket and stacked (module docstring)."""
    audiences, exports, activity, touchpoints, previous_cohort, previous_outcomes = (
        split(table, buckets)
        for table in (
            inputs.audiences_prev,
            inputs.exports_prev,
            inputs.activity,
            inputs.touchpoints,
            inputs.previous_cohort,
            inputs.previous_outcomes,
        )
    )
    day_outcomes, cohorts = [], []
    for b in range(buckets):
        day_outcomes.append(
            goals.goal_user_day_outcomes(audiences[b], activity[b], measured, metrics, ds, touchpoints[b])
        )
        cohorts.append(
            goal_cohort.update_goal_cohort(
                previous_cohort[b], audiences[b], exports[b], activity[b], measured, metrics, ds, start
            )
        )
    cohort = time_to_event.with_event_days(
        stack(cohorts), inputs.previous_cohort, inputs.activity, measured, metrics, inputs.signups, ds, start
    )
    settled, read_on_ds = [], []
    for b, cohort_of_bucket in enumerate(split(cohort, buckets)):
        outcomes, state = goal_cohort.measure_cohort(
            previous_outcomes[b], cohort_of_bucket, activity[b], measured, metrics, ds, start, lookback, touchpoints[b]
        )
        settled.append(outcomes)
        read_on_ds.append(state)
    return GoalDayTables(stack(day_outcomes), cohort, stack(settled), stack(read_on_ds))


def stack(tables: Sequence[pa.Table]) -> pa.Table:
    """The buckets' per-user tables as one, sorted on the outcome key (as each bucket's is): one bucket's table
    itself; numerator and denominator kept when a bucket has them (`goals.without_empty_values`)."""
    if len(tables) == 1:
        return tables[0]
    valued = any("numerator" in t.column_names for t in tables)
    if valued:
        tables = [goals.with_value_columns(t) for t in tables]
    schema = tables[0].schema
    stacked = pl.from_arrow(pa.concat_tables([t.select(schema.names).cast(schema) for t in tables]))
    table = stacked.sort(goals.OUTCOME_KEY).to_arrow().cast(schema)
    return goals.without_empty_values(table) if valued else table
