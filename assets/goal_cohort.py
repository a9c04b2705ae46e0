"""Goals' intent-to-treat cohort and their `to_date` rows (the `day` rows, the contract and the rules both
windows share: `assets.goals`).

`to_date` rows: intent to treat, users as clusters. `goal_cohort` holds, per goal, metric, campaign, arm and
user, the entry day (the first d on which the user was in the campaign's audience as of d - 1), the CUPED
covariate (success days over the CUPED_PRE_DAYS days before entry) and the first exposure (a touchpoint export
of the campaign as of d - 1); nobody leaves it. A cohort user is measured on every day from entry to ds, in
the audience or not. With L = the map's `schedule.late_lookback_days`, the run of ds measures the days
ds - L .. ds afresh on the activity known on ds; day ds - L is settled into `goal_user_outcomes` (per user:
days measured n_i and success days x_i, the previous day's table plus the settled day) and the `to_date` row
reads the settled outcomes plus the open days (`measure_cohort`). Per arm, over its N users:
- `treatment_users` / `holdout_users` = N (distinct users), `*_user_days` = sum n_i,
  `*_successes` = sum x_i, `*_value` = R = sum x_i / sum n_i (the ratio estimator: success days per
  user-day).
- Var(R) by the delta method with users as clusters: N / (N - 1) * sum (x_i - R n_i)^2 / (sum n_i)^2.
  The same user on many days is one cluster, so a heterogeneous, repeating audience widens the interval
  as it should (summing user-days as independent trials made it far too narrow).
- 95% CI of the relative lift on the log scale: se = sqrt(Var(R_t) / R_t^2 + Var(R_h) / R_h^2),
  CI = exp(log(R_t / R_h) ± 1.96 se) - 1. An arm without successes has no usable cluster variance:
  both arms' rates are then continuity-corrected on their totals ((sum x + 0.5) / (sum n + 1)) and
  that arm's term is 1 / 0.5 - 1 / (sum n + 1) (Haldane-Anscombe, as for day rows). An arm of a single
  user has no variance estimate: CI and p-value are NULL (status `inconclusive` or `ok`).
- `p_value`: Wald test of log(R_t / R_h) = 0 with that se (p < 0.05 exactly when the CI excludes 0);
  1.0 when the pooled rate is 0 or 1.
- Sample ratio on the distinct users per arm (the arm is fixed per user, so users are the randomized
  units, not user-days).
- These are the secondary, fixed-horizon columns `ci_low_fixed`, `ci_high_fixed`, `p_value_fixed` (valid
  for one look). The primary `ci_low`, `ci_high`, `p_value` are always-valid (docs/statistics.md): the
  normal-mixture confidence sequence exp(log(R_t / R_h) ± m se) - 1 with n = N_t + N_h users, at the
  row's `alpha` (0.05, lowered by Holm within the campaign across its goals and guardrails), and the
  always-valid p-value of the row's null (goal: 0; guardrail: log(1 + margin)).
- CUPED (docs/statistics.md): the primary estimate adjusts R by the pre-entry covariate, w_i = n_i c_i:
  theta = pooled sum (x_i - R n_i)(w_i - C n_i) / sum (w_i - C n_i)^2, R~ = R - theta (C - C_pooled), and the
  variance above on the adjusted outcomes' residuals; `*_value`, `lift`, the intervals and p-values use it
  (unadjusted when theta = 0, an arm has no successes or one user, or a rate is not positive). The unadjusted
  lift and always-valid interval stay beside it (`*_unadjusted`), with `cuped_theta`. The exposure view
  (`treatment_exposed_users`, `exposed_value`, `exposed_lift`) counts the exposed treated users only and is
  never used in the primary estimate.
- Status: goal rows as for day rows on the primary interval; guardrail rows `breached` when ci_low >
  margin, `ok` when ci_high < margin, else `inconclusive`; then gated (assets.goals); then a goal row whose
  campaign declares a horizon not yet reached (before its `start` or `end`, fewer users than
  `planned_users`) says `running` instead of `met` / `not_met` / `inconclusive`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import polars as pl
import pyarrow as pa

from assets.decisions import gate_by_guardrails, with_aa_checks, with_cluster_statistics
from assets.delta_store import DeltaLayout
from assets.goals import (
    GOAL_USER_DAY_VALUES_SCHEMA,
    INDICATOR_KINDS,
    OUTCOME_KEY,
    VALUE_FIELDS,
    activity_of,
    cluster_counts,
    finish_rows,
    measurements,
    register_touchpoints,
    valued_outputs,
    with_value_columns,
    without_empty_values,
)
from assets.metrics import ACTIVITY, metric_days_sql, metric_values_days_sql
from assets.pyramid_map import Campaign, Goal, Metric
from assets.sql_guard import sandboxed_connection
from assets.time_to_event import with_time_to_event

CUPED_PRE_DAYS = 14  # K: the days before a user's entry whose metric rate is the CUPED covariate
# The lake table goals/goal_user_outcomes: per user, cumulated over the days measured up to ds.
_OUTCOME_KEY_FIELDS = [(name, pa.string()) for name in OUTCOME_KEY]
GOAL_USER_OUTCOMES_SCHEMA = pa.schema(
    [
        ("ds", pa.date32()),
        *_OUTCOME_KEY_FIELDS,
        ("first_ds", pa.date32()),
        ("last_ds", pa.date32()),
        ("days", pa.int64()),
        ("successes", pa.int64()),
    ]
)
# With a ratio or mean metric measured: its numerator and denominator summed over the days measured.
GOAL_USER_OUTCOMES_VALUES_SCHEMA = pa.schema([*GOAL_USER_OUTCOMES_SCHEMA, *VALUE_FIELDS])
# The lake table goals/goal_cohort: who is in each goal's intent-to-treat analysis, since when, in which arm,
# with the pre-entry covariate (CUPED) and the first day the campaign reached the user (exposure).
GOAL_COHORT_SCHEMA = pa.schema(
    [
        ("ds", pa.date32()),
        *_OUTCOME_KEY_FIELDS,
        ("entry_ds", pa.date32()),
        ("pre_days", pa.int64()),
        ("pre_successes", pa.int64()),
        ("exposed_ds", pa.date32()),
    ]
)
# How goal_cohort is stored (assets/delta_store.py): a day's rows are the day before's unchanged (nobody
# leaves), plus the entrants and the rows whose exposure, anchor or first event changed.
COHORT_STORAGE = DeltaLayout(key=tuple(OUTCOME_KEY))

# How goals/goal_user_outcomes is stored (assets/delta_store.py): each group measured on the settled day moves on by it

_GROUP = ["goal_id", "metric", "campaign_id"]
_COLUMNS = [*OUTCOME_KEY, "first_ds", "last_ds", "days", "successes", "numerator", "denominator"]


def _outcome_columns(table: pa.Table) -> pa.Table:
    return with_value_columns(table).select(["ds", *_COLUMNS])


def _settled_groups(frame: pl.DataFrame) -> dict[str, Any]:
    """The day settled (the latest `last_ds`) and the groups measured on it."""
    settled = frame.get_column("last_ds").max()
    groups = frame.filter(pl.col("last_ds") == settled).select(_GROUP).unique().sort(_GROUP)
    return {"settled": settled.isoformat(), "groups": groups.rows()}


def _moved_on(before: pl.DataFrame, moves: Mapping[str, Any]) -> pl.DataFrame:
    """The day before's rows, those of the groups measured on the settled day once more (days + 1, last_ds)."""
    settled = date.fromisoformat(moves["settled"])
    groups = pl.DataFrame(moves["groups"], schema={c: pl.String for c in _GROUP}, orient="row")
    marked = before.join(groups.with_columns(_moves=pl.lit(True)), on=_GROUP, how="left")
    moving = pl.col("_moves").fill_null(False) & (pl.col("last_ds") < settled)
    return marked.with_columns(
        days=pl.when(moving).then(pl.col("days") + 1).otherwise(pl.col("days")),
        last_ds=pl.when(moving).then(pl.lit(settled, pl.Date)).otherwise(pl.col("last_ds")),
    ).select(_COLUMNS)


OUTCOMES_STORAGE = DeltaLayout(
    key=tuple(OUTCOME_KEY),
    normalise=_outcome_columns,
    finish=without_empty_values,
    moves=_settled_groups,
    move_on=_moved_on,
)


def update_goal_user_outcomes(
    previous: pa.Table | None, day_outcomes: pa.Table, ds: date, day: date | None = None
) -> pa.Table:
    """goals/goal_user_outcomes for `ds`: the partition of ds - 1 (None on the first day) plus the per-user
    outcomes of the measured `day` (default ds). Users and goals not measured that day are carried forward
    unchanged. The output is sorted on the key, so the same inputs give the same table."""
    measured = ds if day is None else day
    day_values = with_value_columns(day_outcomes).select(GOAL_USER_DAY_VALUES_SCHEMA.names)
    today = pl.from_arrow(day_values.cast(GOAL_USER_DAY_VALUES_SCHEMA)).select(
        *OUTCOME_KEY,
        first_ds=pl.lit(measured, pl.Date),
        last_ds=pl.lit(measured, pl.Date),
        days=pl.lit(1, pl.Int64),
        successes=pl.col("success").cast(pl.Int64),
        numerator=pl.col("numerator"),
        denominator=pl.col("denominator"),
    )
    schema = GOAL_USER_OUTCOMES_VALUES_SCHEMA
    frames = [today]
    if previous is not None:
        frames.insert(0, pl.from_arrow(with_value_columns(previous).select(schema.names[1:]).cast(schema.remove(0))))
    kept = pl.col("numerator").is_not_null().any()  # a share metric's rows keep NULL sums
    merged = (
        pl.concat(frames)
        .group_by(OUTCOME_KEY)
        .agg(
            pl.col("first_ds").min(),
            pl.col("last_ds").max(),
            pl.col("days").sum(),
            pl.col("successes").sum(),
            numerator=pl.when(kept).then(pl.col("numerator").sum()),
            denominator=pl.when(kept).then(pl.col("denominator").sum()),
        )
        .with_columns(ds=pl.lit(ds, pl.Date))
        .sort(OUTCOME_KEY)
    )
    return without_empty_values(merged.select(schema.names).to_arrow().cast(schema))


# --- intent-to-treat cohort ---------------------------------------------------------------------


def update_goal_cohort(
    previous: pa.Table | None,
    audiences_prev: pa.Table | None,
    exposures_prev: pa.Table | None,
    activity: pa.Table,
    goals: Sequence[Goal],
    metrics: Mapping[str, Metric],
    ds: date,
    start: date,
    pre_days: int = CUPED_PRE_DAYS,
) -> pa.Table:
    """goals/goal_cohort for `ds`: the partition of ds - 1 plus the users of each goal's campaign audience as of
    ds - 1 not yet in it (entry_ds = ds, in their arm, with the metric's success days over the `pre_days` days
    before entry that history covers); `exposed_ds` is set to ds for users the campaign's exports of ds - 1
    reached first (`exposures_prev`: campaign_id, user_id). Nobody ever leaves; sorted on the key."""
    before = _cohort_frame(previous)
    audience = pl.from_arrow(_audience_columns(audiences_prev))
    wanted = pl.DataFrame(
        [(g.id, m, g.campaign) for g, m in _measured_pairs(goals)],
        schema={"goal_id": pl.String, "metric": pl.String, "campaign_id": pl.String},
        orient="row",
    )
    candidates = wanted.join(audience, on="campaign_id").unique(OUTCOME_KEY)
    entrants = candidates.join(before, on=OUTCOME_KEY, how="anti")
    covariates = pre_entry_successes(entrants, activity, metrics, ds, start, pre_days)
    entered = covariates.with_columns(entry_ds=pl.lit(ds, pl.Date), exposed_ds=pl.lit(None, pl.Date))
    cohort = pl.concat([before, entered.select(before.columns)])
    exposed = pl.from_arrow(_exposure_columns(exposures_prev)).unique().with_columns(_exposed=pl.lit(True))
    cohort = (
        cohort.join(exposed, on=["campaign_id", "user_id"], how="left")
        .with_columns(exposed_ds=pl.coalesce("exposed_ds", pl.when(pl.col("_exposed")).then(pl.lit(ds, pl.Date))))
        .with_columns(ds=pl.lit(ds, pl.Date))
        .sort(OUTCOME_KEY)
    )
    return cohort.select(GOAL_COHORT_SCHEMA.names).to_arrow().cast(GOAL_COHORT_SCHEMA)


def pre_entry_successes(
    entrants: pl.DataFrame, activity: pa.Table, metrics: Mapping[str, Metric], ds: date, start: date, pre_days: int
) -> pl.DataFrame:
    """The CUPED covariate of users entering on ds (goal_id, metric, campaign_id, arm, user_id): `pre_days` =
    the days ds - K .. ds - 1 on or after `start`, `pre_successes` = those on which the metric held."""
    days = [ds - timedelta(days=k) for k in range(pre_days, 0, -1) if ds - timedelta(days=k) >= start]
    columns = {"pre_days": pl.Int64, "pre_successes": pl.Int64}
    if not days or entrants.is_empty():
        return entrants.with_columns(pre_days=pl.lit(0, pl.Int64), pre_successes=pl.lit(0, pl.Int64)).cast(columns)
    con = sandboxed_connection()
    try:
        con.register(ACTIVITY, activity)
        parts = []
        for (metric_id,), users in entrants.group_by("metric", maintain_order=True):
            if metrics[metric_id].kind not in INDICATOR_KINDS:  # CUPED covers share metrics only (docs/statistics.md)
                parts.append(users.with_columns(pre_successes=pl.lit(0, pl.Int64)))
                continue
            con.register("_entrants", users.select("user_id").unique().to_arrow())
            sql = metric_days_sql(metrics[metric_id], days, activity.column_names, "_entrants", ACTIVITY)
            counted = con.sql(
                f"SELECT user_id, count(*) FILTER (WHERE success) AS pre_successes FROM ({sql}) GROUP BY 1"
            )
            parts.append(users.join(pl.from_arrow(counted.to_arrow_table()), on="user_id", how="left"))
    finally:
        con.close()
    return (
        pl.concat(parts)
        .with_columns(pre_days=pl.lit(len(days)), pre_successes=pl.col("pre_successes").fill_null(0))
        .cast(columns)
    )


def cohort_outcomes(
    cohort: pa.Table,
    activity: pa.Table,
    goals: Sequence[Goal],
    metrics: Mapping[str, Metric],
    days: Sequence[date],
    touchpoints: pa.Table | None = None,
) -> pa.Table:
    """Per measured day of `days`, goal, measured metric and cohort user who entered on or before that day: the
    user's arm and whether the metric held, or a ratio or mean metric's numerator and denominator
    (GOAL_USER_DAY_SCHEMA plus `day`), whether or not the user is still in the audience (intent to treat)."""
    frame = _cohort_frame(cohort)
    parts = []
    con = sandboxed_connection()
    try:
        con.register(ACTIVITY, activity)
        register_touchpoints(con, touchpoints)
        for goal, metric_id in _measured_pairs(goals) if days else []:
            users = frame.filter(
                (pl.col("goal_id") == goal.id)
                & (pl.col("metric") == metric_id)
                & (pl.col("campaign_id") == goal.campaign)
            )
            if users.is_empty():
                continue
            con.register("_cohort", users.select("user_id", "arm", "entry_ds").to_arrow())
            measured = con.sql(_cohort_days_sql(metrics[metric_id], days, activity)).to_arrow_table()
            parts.append(
                pl.from_arrow(measured).with_columns(
                    goal_id=pl.lit(goal.id), metric=pl.lit(metric_id), campaign_id=pl.lit(goal.campaign)
                )
            )
    finally:
        con.close()
    schema = GOAL_USER_DAY_VALUES_SCHEMA.append(pa.field("day", pa.date32()))
    if not parts:
        return without_empty_values(schema.empty_table())
    stacked = pl.concat([p.select(schema.names) for p in parts]).sort("day", *OUTCOME_KEY)
    return without_empty_values(stacked.to_arrow().cast(schema))


def _cohort_days_sql(metric: Metric, days: Sequence[date], activity: pa.Table) -> str:
    """`arm, user_id, day, success, numerator, denominator` of the registered `_cohort` on each of `days`."""
    relation, columns = activity_of(metric, activity)
    if metric.kind in INDICATOR_KINDS:
        indicator = metric_days_sql(metric, days, columns, "_cohort", relation)
        return f"""SELECT c.arm, c.user_id, i.day, i.success, NULL::DOUBLE AS numerator, NULL::DOUBLE AS denominator
            FROM _cohort c JOIN ({indicator}) i USING (user_id) WHERE c.entry_ds <= i.day"""
    values = metric_values_days_sql(metric, days, columns, "_cohort", relation)
    return f"""SELECT c.arm, c.user_id, v.day, v.numerator > 0 AS success, v.numerator, v.denominator
        FROM _cohort c JOIN ({values}) v USING (user_id) WHERE c.entry_ds <= v.day"""


def measure_cohort(
    previous: pa.Table | None,
    cohort: pa.Table,
    activity: pa.Table,
    goals: Sequence[Goal],
    metrics: Mapping[str, Metric],
    ds: date,
    start: date,
    lookback: int,
    touchpoints: pa.Table | None = None,
) -> tuple[pa.Table, pa.Table]:
    """(goals/goal_user_outcomes for ds, the to-date state read on ds). Day ds - lookback is settled: measured
    on the activity known on ds and added for good to the partition of ds - 1. The open days after it, up to ds,
    are measured afresh on every run (late activity still counts) and added only to the state read."""
    settle = ds - timedelta(days=lookback)
    days = [settle + timedelta(days=k) for k in range(lookback + 1) if settle + timedelta(days=k) >= start]
    outcomes = pl.from_arrow(cohort_outcomes(cohort, activity, goals, metrics, days, touchpoints))

    def of(day: date) -> pa.Table:
        return outcomes.filter(pl.col("day") == day).drop("day").to_arrow()

    settled = update_goal_user_outcomes(previous, of(settle), ds, day=settle)
    state = settled
    for day in days:
        if day > settle:
            state = update_goal_user_outcomes(state, of(day), ds, day=day)
    return settled, state


def _measured_pairs(goals: Sequence[Goal]) -> list[tuple[Goal, str]]:
    """(goal, metric id) of each goal's metric and guardrails, a metric repeated within a goal measured once."""
    return list({(goal.id, metric_id): (goal, metric_id) for goal, _kind, metric_id in measurements(goals)}.values())


def _cohort_frame(cohort: pa.Table | None) -> pl.DataFrame:
    if cohort is None:
        return pl.from_arrow(GOAL_COHORT_SCHEMA.empty_table()).drop("ds")
    return pl.from_arrow(cohort.select(GOAL_COHORT_SCHEMA.names).cast(GOAL_COHORT_SCHEMA)).drop("ds")


def _audience_columns(audiences: pa.Table | None) -> pa.Table:
    schema = pa.schema([("campaign_id", pa.string()), ("user_id", pa.string()), ("arm", pa.string())])
    return schema.empty_table() if audiences is None else audiences.select(schema.names).cast(schema)


def _exposure_columns(exposures: pa.Table | None) -> pa.Table:
    schema = pa.schema([("campaign_id", pa.string()), ("user_id", pa.string())])
    return schema.empty_table() if exposures is None else exposures.select(schema.names).cast(schema)


# --- to-date rows -------------------------------------------------------------------------------


def goal_to_date(
    user_outcomes: pa.Table,
    ds: date,
    goals: Sequence[Goal],
    campaigns: Sequence[Campaign],
    cohort: pa.Table | None = None,
    metrics: Mapping[str, Metric] | None = None,
    buckets: int = 1,
) -> pa.Table:
    """Window `to_date` rows for `ds` from the per-user outcomes read on ds (goal_user_outcomes plus the open days,
    `measure_cohort`): per goal's metric and guardrails (for the goal's current campaign), users as clusters, the
    estimate CUPED-adjusted on the `cohort`'s pre-entry covariate, with its exposure view (module docstring).
    `metrics` gives each row's kind and direction (without it: share metrics, the default directions); a
    time-to-event goal's row is estimated on the cohort's anchors and first events (assets.time_to_event). The arms'
    sums are pooled over `buckets` (the run's count: `goals.cluster_counts`)."""
    outcomes = pl.from_arrow(
        with_value_columns(user_outcomes).select([*OUTCOME_KEY, "days", "successes", "numerator", "denominator"])
    )
    per_user = _with_cohort(outcomes, cohort, ds).select(
        *OUTCOME_KEY,
        "days",
        "covariate",
        "exposed",
        x=pl.coalesce(pl.col("numerator"), pl.col("successes").cast(pl.Float64)),  # a share: success days of days
        n=pl.coalesce(pl.col("denominator"), pl.col("days").cast(pl.Float64)),
    )
    counts = cluster_counts(per_user, goals, campaigns, metrics, buckets)
    if metrics is not None:  # the one dispatch point of metric kinds with their own estimator
        counts = with_time_to_event(counts, cohort, goals, metrics, ds)
    rows = valued_outputs(with_cluster_statistics(counts))
    checked = with_aa_checks(gate_by_guardrails(rows), [c.id for c in campaigns if not c.treated])
    return finish_rows(before_horizon(checked, campaigns, ds), ds, "to_date")


def _with_cohort(outcomes: pl.DataFrame, cohort: pa.Table | None, ds: date) -> pl.DataFrame:
    """Per-user outcomes with the CUPED covariate w_i = n_i c_i (c_i = pre_successes / pre_days, 0 without pre
    days or without a cohort row) and `exposed` (the campaign reached the user on or before ds)."""
    if cohort is None:
        return outcomes.with_columns(covariate=pl.lit(0.0), exposed=pl.lit(False))
    users = _cohort_frame(cohort).select(*OUTCOME_KEY, "pre_days", "pre_successes", "exposed_ds")
    joined = outcomes.join(users, on=OUTCOME_KEY, how="left")
    rate = pl.when(pl.col("pre_days") > 0).then(pl.col("pre_successes") / pl.col("pre_days")).otherwise(0.0)
    return joined.with_columns(
        covariate=pl.col("days") * rate.fill_null(0.0),
        exposed=(pl.col("exposed_ds") <= ds).fill_null(False),
    )


def before_horizon(frame: pl.DataFrame, campaigns: Sequence[Campaign], ds: date) -> pl.DataFrame:
    """Goal rows of a campaign whose planned horizon (start, end, planned users) is not reached say `running`
    (a blocked goal stays `blocked_by_guardrail`; guardrails are always read)."""
    waiting = [c.id for c in campaigns if (c.start and ds < c.start) or (c.end and ds < c.end)]
    planned = {c.id: c.planned_users for c in campaigns if c.planned_users}
    users = pl.col("treatment_users") + pl.col("holdout_users")
    short = users < pl.col("campaign_id").replace_strict(planned, default=0, return_dtype=pl.Int64)
    running = (
        (pl.col("kind") == "goal")
        & pl.col("status").is_in(["met", "not_met", "inconclusive"])
        & (pl.col("campaign_id").is_in(waiting) | short)
    )
    return frame.with_columns(status=pl.when(running).then(pl.lit("running")).otherwise(pl.col("status")))
