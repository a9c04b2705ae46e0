"""One bucket of a day's per-user goal work, and the buckets stacked (docs/scaling.md, "Buckets").

A bucket's inputs hold only its users' rows (`assets.buckets`); its per-user SQL (the day's outcomes, the cohort's
entrants and their CUPED covariate, the time-to-event columns, the cohort's measured days) reads only them. The one
figure of the whole read a bucket needs, the first activity day the time-to-event columns start from, is passed in.
The per-user tables of the buckets are stacked and sorted on their key, so they are the tables one bucket gives.
The Kaplan-Meier estimator reads the whole cohort, and the goal rows are computed from the buckets' summed
statistics (`goals.cluster_counts`), both after the stacking.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl
import pyarrow as pa

from assets import goal_cohort, goals, time_to_event
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


def measure_bucket(
    inputs: GoalDayInputs,
    measured: Sequence[Goal],
    metrics: Mapping[str, Metric],
    ds: date,
    start: date,
    lookback: int,
    first_day: date,
) -> GoalDayTables:
    """One bucket's per-user goal tables from its users' inputs; `first_day`: the first activity day of the whole
    read (`time_to_event.with_event_days`)."""
    day_outcomes = goals.goal_user_day_outcomes(
        inputs.audiences_prev, inputs.activity, measured, metrics, ds, inputs.touchpoints
    )
    previous, audiences, activity = inputs.previous_cohort, inputs.audiences_prev, inputs.activity
    cohort = goal_cohort.update_goal_cohort(
        previous, audiences, inputs.exports_prev, activity, measured, metrics, ds, start
    )
    cohort = time_to_event.with_event_days(
        cohort, inputs.previous_cohort, inputs.activity, measured, metrics, inputs.signups, ds, start, first_day
    )
    settled, read_on_ds = goal_cohort.measure_cohort(
        inputs.previous_outcomes, cohort, inputs.activity, measured, metrics, ds, start, lookback, inputs.touchpoints
    )
    return GoalDayTables(day_outcomes, cohort, settled, read_on_ds)


def stack_buckets(parts: Sequence[GoalDayTables]) -> GoalDayTables:
    """The buckets' tables as the day's: each stacked and sorted on its key (`stack`)."""
    return GoalDayTables(
        stack([p.day_outcomes for p in parts]),
        stack([p.cohort for p in parts]),
        stack([p.settled for p in parts]),
        stack([p.read_on_ds for p in parts]),
    )


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
