"""Goals: per goal and day, the campaign's treatment against its holdout, on the goal's metric and
on each guardrail metric.

Metric (pyramid.yaml `metrics`): a user succeeds on day d when the condition holds on the user's
`user_daily` columns summed over the `window_days` ending on d (activity dates d - window_days + 1 .. d,
all landing partitions summed). A user with no rows in the window is evaluated on zero-filled sums;
a condition that evaluates to NULL counts as not satisfied. `assets.metrics` builds this SQL (the North
Star and the segment baselines use it too); it runs on a `sql_guard.sandboxed_connection`. The formulas
below are computed by `assets.statistics`. With more than one bucket (`$PYRAMID_BUCKETS`) the arms' sums are computed
per user bucket and pooled (`arm_statistics`, `merge_arm_statistics`; docs/scaling.md): the figures do not change.

Metric kinds (docs/statistics.md, "Metric kinds"): a `share` metric is the indicator above. A `ratio` metric gives
per user and day the window sums of its `numerator` and `denominator` expressions (`assets.metrics.metric_values_sql`;
with a `touchpoint`, over that touchpoint's rows of user_touchpoint_daily); a `mean` metric its `value` over 1.
Their per-user day rows carry `numerator` / `denominator` (the tables hold these two columns only when a ratio or mean
metric is measured) and every row of theirs is read with users as clusters, x_i and n_i being the user's summed
numerator and denominator: the `to_date` formulas (assets.goal_cohort) with success days -> numerator and user-days ->
denominator, for `day` rows as well (one look: the fixed-horizon interval is the primary one). Their rows keep the
sums in `*_numerator` / `*_denominator`, `*_successes` NULL and `*_user_days` = days measured; CUPED is not applied
to them. Each row says its `metric_kind` and `direction` (the metric's; else increase for a goal, decrease for a
guardrail); the status rules below are those of direction increase for goals and decrease for guardrails, mirrored
for the other direction: a decrease goal is `met` when ci_high < 0 and lift <= target (a negative target), `not_met`
when ci_low > target; an increase guardrail is `breached` when ci_high < -margin (day rows: ci_high < 0), `ok` when
ci_low > -margin.

Statistics of a `day` row (treatment t, holdout h; n users, s successes; value p = s / n; users as
independent trials, `*_user_days` = n):
- `lift` = p_t / p_h - 1 (NULL when p_h = 0).
- 95% CI of the relative lift by the delta method on log(p_t / p_h):
  se = sqrt(1/s_t - 1/n_t + 1/s_h - 1/n_h), CI = exp(log(p_t / p_h) ± 1.96 se) - 1. When an arm has no
  successes, 0.5 is added to every cell of the 2x2 table (s + 0.5, n + 1; Haldane-Anscombe) so that
  the interval stays defined.
- `p_value`: two-sided two-proportion z-test with the pooled rate; 1.0 when the pooled rate is 0 or 1
  (both arms identical).
- Sample ratio: chi-square (1 degree of freedom) of the arm sizes against the expected split
  (1 - holdout, holdout); `srm_ok` when its p-value >= 0.001.
- `status` (first rule that applies):
  `no_data` when either arm is empty; `srm_fail` when the sample ratio check fails;
  goal rows: `met` when the lift is significantly positive (ci_low > 0) and the point estimate is at
  or above the target (an infinite lift, p_h = 0, counts as above), `not_met` when ci_high < target
  (the target lies above the whole interval), else `inconclusive`;
  guardrail rows (rates that must not rise): `breached` when ci_low > 0 (the rate rose significantly
  under treatment), else `ok`. The primary and the `_fixed` columns are the same here; `alpha` = 0.05.
- Gating (both windows): a goal `met` while one of its guardrails is `breached` is `blocked_by_guardrail`.
- A goal whose metric is a `time_to_event` (assets.time_to_event) has no `day` row; its `to_date` row compares the
  arms' restricted mean time to the event (values in days, the `*_censored` and `*_share_within` columns set) and
  its status is mirrored (direction decrease: `met` when ci_high < 0 and the change is at or below the target).

The `to_date` rows (intent to treat, CUPED, late data) and the cohort they read: `assets.goal_cohort`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import duckdb
import polars as pl
import pyarrow as pa

from assets.buckets import user_buckets
from assets.decisions import gate_by_guardrails, with_aa_checks, with_cluster_day_statistics, with_statistics
from assets.features import touchpoint_daily_schema
from assets.metrics import (
    ACTIVITY,
    TOUCHPOINT_ACTIVITY,
    campaign_cohort,
    cohort_outcomes_sql,
    metric_indicator_sql,
    metric_values_sql,
    register_inputs,
    touchpoint_activity,
)
from assets.pyramid_map import Campaign, Goal, Metric
from assets.sql_guard import sandboxed_connection
from assets.statistics import (
    cluster_cross_residuals,
    cluster_levers,
    cluster_rate,
    cluster_sq_residuals,
    moved_residuals,
)
from assets.time_to_event import is_time_to_event

GOAL_METRICS_SCHEMA = pa.schema(
    [
        ("ds", pa.date32()),
        ("goal_id", pa.string()),
        ("metric", pa.string()),
        ("kind", pa.string()),
        ("campaign_id", pa.string()),
        ("window", pa.string()),
        ("treatment_users", pa.int64()),
        ("holdout_users", pa.int64()),
        ("treatment_successes", pa.int64()),
        ("holdout_successes", pa.int64()),
        ("treatment_user_days", pa.int64()),
        ("holdout_user_days", pa.int64()),
        ("treatment_value", pa.float64()),
        ("holdout_value", pa.float64()),
        ("lift", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("p_value", pa.float64()),
        ("alpha", pa.float64()),
        ("ci_low_fixed", pa.float64()),
        ("ci_high_fixed", pa.float64()),
        ("p_value_fixed", pa.float64()),
        ("margin", pa.float64()),
        ("srm_p_value", pa.float64()),
        ("srm_ok", pa.bool_()),
        ("target", pa.float64()),
        ("status", pa.string()),
        ("cuped_theta", pa.float64()),
        ("lift_unadjusted", pa.float64()),
        ("ci_low_unadjusted", pa.float64()),
        ("ci_high_unadjusted", pa.float64()),
        ("treatment_exposed_users", pa.int64()),
        ("exposed_value", pa.float64()),
        ("exposed_lift", pa.float64()),
        # time-to-event goal rows only (assets.time_to_event): users censored before the horizon, KM share
        # reaching the event within it
        ("treatment_censored", pa.int64()),
        ("holdout_censored", pa.int64()),
        ("treatment_share_within", pa.float64()),
        ("holdout_share_within", pa.float64()),
        ("metric_kind", pa.string()),
        ("direction", pa.string()),
        ("treatment_numerator", pa.float64()),
        ("holdout_numerator", pa.float64()),
        ("treatment_denominator", pa.float64()),
        ("holdout_denominator", pa.float64()),
    ]
)
# Kinds measured per user and day by their condition's indicator (a time to event: its event's; its own estimator
# reads the cohort, assets.time_to_event); the others by their expressions' window sums.
INDICATOR_KINDS = ("share", "time_to_event")
_COUNT_COLUMNS = ["treatment_users", "holdout_users", "treatment_successes", "holdout_successes"]
# One measured day of a user: goal metric or guardrail, campaign, arm, success on the day.
GOAL_USER_DAY_SCHEMA = pa.schema(
    [
        ("goal_id", pa.string()),
        ("metric", pa.string()),
        ("campaign_id", pa.string()),
        ("arm", pa.string()),
        ("user_id", pa.string()),
        ("success", pa.bool_()),
    ]
)
# Ratio and mean metrics' day sums (NULL for a share metric): a table holding any has these two columns too.
VALUE_FIELDS = [("numerator", pa.float64()), ("denominator", pa.float64())]
GOAL_USER_DAY_VALUES_SCHEMA = pa.schema([*GOAL_USER_DAY_SCHEMA, *VALUE_FIELDS])
# The key of a user's outcome: goal, measured metric, campaign, arm, user.
OUTCOME_KEY = ["goal_id", "metric", "campaign_id", "arm", "user_id"]


# --- goal rows ----------------------------------------------------------------------------------


def goal_day_metrics(
    audiences_prev: pa.Table | None,
    activity: pa.Table,
    goals: Sequence[Goal],
    metrics: Mapping[str, Metric],
    campaigns: Sequence[Campaign],
    ds: date,
) -> pa.Table:
    """Window `day` rows for `ds`: per goal, its metric and each guardrail, treatment against holdout.

    `audiences_prev` is the audience as of ds - 1 (None on the first day: every row is `no_data`);
    `activity` holds the user_daily rows known on ds for the activity dates the metrics need.
    """
    outcomes = goal_user_day_outcomes(audiences_prev, activity, goals, metrics, ds)
    return goal_day_rows(outcomes, goals, campaigns, ds, metrics)


def goal_user_day_outcomes(
    audiences_prev: pa.Table | None,
    activity: pa.Table,
    goals: Sequence[Goal],
    metrics: Mapping[str, Metric],
    ds: date,
    touchpoints: pa.Table | None = None,
) -> pa.Table:
    """One row per goal, measured metric (goal metric and guardrails) and user of the campaign's
    audience as of ds - 1: the user's arm and whether the metric's condition held on ds, or a ratio or mean
    metric's numerator and denominator (GOAL_USER_DAY_SCHEMA). The `day` rows count these; `goal_user_outcomes`
    cumulates them. `touchpoints` holds the user_touchpoint_daily rows a touchpoint metric reads."""
    con = sandboxed_connection()
    parts = []
    try:
        register_inputs(con, audiences_prev, activity)
        register_touchpoints(con, touchpoints)
        seen = set()
        for goal, _kind, metric_id in measurements(goals):
            if (goal.id, metric_id) in seen:  # a guardrail that repeats the goal's metric is measured once
                continue
            seen.add((goal.id, metric_id))
            cohort, metric = campaign_cohort(goal.campaign), metrics[metric_id]
            users = pl.from_arrow(
                con.sql(_day_outcomes_sql(metric, ds, activity, touchpoints, cohort)).to_arrow_table()
            )
            parts.append(
                users.with_columns(goal_id=pl.lit(goal.id), metric=pl.lit(metric_id), campaign_id=pl.lit(goal.campaign))
            )
    finally:
        con.close()
    frame = pl.concat([p.select(GOAL_USER_DAY_VALUES_SCHEMA.names) for p in parts]) if parts else None
    if frame is None or frame.is_empty():
        return GOAL_USER_DAY_SCHEMA.empty_table()
    return without_empty_values(frame.sort(OUTCOME_KEY).to_arrow().cast(GOAL_USER_DAY_VALUES_SCHEMA))


def register_touchpoints(con: duckdb.DuckDBPyConnection, touchpoints: pa.Table | None) -> None:
    con.register(TOUCHPOINT_ACTIVITY, touchpoint_daily_schema().empty_table() if touchpoints is None else touchpoints)


def activity_of(metric: Metric, activity: pa.Table) -> tuple[str, list[str]]:
    """The relation (and its columns) a metric is measured on: user_daily, or its touchpoint's counts."""
    if metric.touchpoint:
        return touchpoint_activity(metric, TOUCHPOINT_ACTIVITY), touchpoint_daily_schema().names
    return ACTIVITY, activity.column_names


def _day_outcomes_sql(metric: Metric, ds: date, activity: pa.Table, touchpoints: pa.Table | None, cohort: str) -> str:
    """`arm, user_id, success, numerator, denominator` of a campaign's audience on the window ending on ds."""
    relation, columns = activity_of(metric, activity)
    if metric.kind in INDICATOR_KINDS:
        indicator = metric_indicator_sql(metric, ds, columns, users=cohort, activity=relation)
        return f"""SELECT *, NULL::DOUBLE AS numerator, NULL::DOUBLE AS denominator
            FROM ({cohort_outcomes_sql(cohort, indicator)})"""
    values = metric_values_sql(metric, ds, columns, users=cohort, activity=relation)
    return f"""SELECT c.arm, c.user_id, v.numerator > 0 AS success, v.numerator, v.denominator
        FROM (SELECT DISTINCT user_id, arm FROM {cohort}) c JOIN ({values}) v USING (user_id)"""


def goal_day_rows(
    outcomes: pa.Table,
    goals: Sequence[Goal],
    campaigns: Sequence[Campaign],
    ds: date,
    metrics: Mapping[str, Metric] | None = None,
    buckets: int = 1,
) -> pa.Table:
    """Window `day` rows for `ds` from the day's per-user outcomes (`goal_user_day_outcomes`): share metrics'
    users as independent trials; ratio and mean metrics' users as clusters (fixed horizon, one look), summed over
    `buckets` (`cluster_counts`). A time-to-event goal has no day row (its guardrails do): one day says nothing
    about a time."""
    values = GOAL_USER_DAY_VALUES_SCHEMA
    frame = pl.from_arrow(with_value_columns(outcomes).select(values.names).cast(values))
    shares = _share_day_rows(frame.filter(pl.col("numerator").is_null()).to_arrow(), goals, campaigns, metrics)
    rows = [shares.filter(pl.col("metric_kind") == "share")]
    valued_kinds = ["ratio", "mean"]
    if any(kind in valued_kinds for kind in _kinds(goals, metrics).values()):
        per_user = frame.filter(pl.col("numerator").is_not_null()).select(
            *OUTCOME_KEY, x=pl.col("numerator"), n=pl.col("denominator"), days=pl.lit(1, pl.Int64)
        )
        valued = with_cluster_day_statistics(cluster_counts(per_user, goals, campaigns, metrics, buckets))
        rows.append(valued_outputs(valued).filter(pl.col("metric_kind").is_in(valued_kinds)))
    untreated = [c.id for c in campaigns if not c.treated]
    gated = with_aa_checks(gate_by_guardrails(pl.concat(rows, how="diagonal_relaxed")), untreated)
    return finish_rows(gated, ds, "day")


def _share_day_rows(
    outcomes: pa.Table, goals: Sequence[Goal], campaigns: Sequence[Campaign], metrics: Mapping[str, Metric] | None
) -> pl.DataFrame:
    holdouts = {c.id: c.holdout for c in campaigns}
    by_arm = {}
    for goal_id, metric_id, campaign_id, arm, users, successes in (
        pl.from_arrow(outcomes)
        .group_by("goal_id", "metric", "campaign_id", "arm")
        .agg(pl.len(), pl.col("success").sum())
        .iter_rows()
    ):
        by_arm.setdefault((goal_id, metric_id, campaign_id), {})[arm] = (int(users), int(successes))
    rows = [
        _count_row(goal, kind, metric_id, holdouts[goal.campaign], by_arm.get((goal.id, metric_id, goal.campaign), {}))
        for goal, kind, metric_id in measurements(goals)
        if not (kind == "goal" and metrics is not None and is_time_to_event(metrics[metric_id]))
    ]
    counts = pl.DataFrame(rows, schema=_COUNTS_SCHEMA).with_columns(
        treatment_user_days=pl.col("treatment_users"),  # one day: a user is one user-day
        holdout_user_days=pl.col("holdout_users"),
    )
    return with_statistics(_with_kinds(counts, metrics))


def with_value_columns(table: pa.Table) -> pa.Table:
    """A table of share metrics only (no value columns) with NULL numerator and denominator."""
    for name in ("numerator", "denominator"):
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.float64()))
    return table


def without_empty_values(table: pa.Table) -> pa.Table:
    """Without the numerator and denominator columns when no row has them (share metrics only)."""
    if table.column("numerator").null_count == table.num_rows:
        return table.drop_columns(["numerator", "denominator"])
    return table


def cluster_counts(
    per_user: pl.DataFrame,
    goals: Sequence[Goal],
    campaigns: Sequence[Campaign],
    metrics: Mapping[str, Metric] | None,
    buckets: int = 1,
) -> pl.DataFrame:
    """Per goal's metric and guardrail, the arms' cluster sums (`with_cluster_statistics`) of the per-user outcome
    key with `x` (numerator), `n` (denominator), `days` and, where present, `covariate` and `exposed`: summed
    over the users' `buckets` (the run's count, `assets.buckets`), each bucket's sums computed on its users alone."""
    holdouts = {c.id: c.holdout for c in campaigns}
    wanted = pl.DataFrame(
        [
            _count_row(goal, kind, metric_id, holdouts[goal.campaign], {})
            for goal, kind, metric_id in measurements(goals)
        ],
        schema=_COUNTS_SCHEMA,
    ).drop(_COUNT_COLUMNS)
    arms = merge_arm_statistics(arm_statistics(per_user, buckets))
    counts = wanted
    for arm in ("treatment", "holdout"):
        per_arm = arms.filter(pl.col("arm") == arm).drop("arm").rename({c: f"{arm}_{c}" for c in _ARM_STATS})
        counts = counts.join(per_arm, on=["goal_id", "metric", "campaign_id"], how="left")
    counts = counts.with_columns(
        pl.col(*(f"{arm}_{c}" for arm in ("treatment", "holdout") for c in _ARM_STATS)).fill_null(0)
    )
    return _with_kinds(counts, metrics)


_GROUP = ["goal_id", "metric", "campaign_id"]
_RESIDUALS = ("sq_residuals", "cross_residuals", "covariate_sq_residuals")


def arm_statistics(per_user: pl.DataFrame, buckets: int = 1) -> pl.DataFrame:
    """Per goal, metric, campaign, arm and user bucket (`assets.buckets`), the sufficient statistics of the bucket's
    users: `_ARM_STATS` (residuals about the bucket's own rates) and what `merge_arm_statistics` needs to pool them."""
    if "covariate" not in per_user.columns:
        per_user = per_user.with_columns(covariate=pl.lit(0.0), exposed=pl.lit(False))
    of_user = user_buckets(per_user.get_column("user_id").to_arrow(), buckets) if buckets > 1 else 0
    x, n, w, exposed = pl.col("x"), pl.col("n"), pl.col("covariate"), pl.col("exposed")
    return (
        per_user.with_columns(bucket=pl.Series(of_user) if buckets > 1 else pl.lit(0, pl.Int64))
        .group_by(*_GROUP, "arm", "bucket")
        .agg(
            users=pl.len().cast(pl.Int64),
            user_days=n.sum(),
            successes=x.sum(),
            days=pl.col("days").sum().cast(pl.Int64),
            sq_residuals=cluster_sq_residuals(x, n),
            covariate=w.sum(),
            cross_residuals=cluster_cross_residuals(x, n, w),
            covariate_sq_residuals=cluster_sq_residuals(w, n),
            exposed_users=exposed.sum().cast(pl.Int64),
            exposed_user_days=n.filter(exposed).sum(),
            exposed_successes=x.filter(exposed).sum(),
            rate=cluster_rate(x, n),
            covariate_rate=cluster_rate(w, n),
            lever=cluster_levers(x, n),
            covariate_lever=cluster_levers(w, n),
            n_sq=(n.cast(pl.Float64) ** 2).sum(),
        )
        .sort(*_GROUP, "arm", "bucket")
    )


def merge_arm_statistics(buckets: pl.DataFrame) -> pl.DataFrame:
    """Per goal, metric, campaign and arm, `_ARM_STATS` of all its users from its buckets' `arm_statistics`: sums
    add; residual sums are moved to the pooled rates (`moved_residuals`) and added; NaN where sum n = 0."""
    arm = [*_GROUP, "arm"]
    if buckets.select(pl.struct(arm).is_unique().all()).item():  # one bucket per arm: nothing to move
        pooled = buckets
    else:
        d, e = _shift("rate", "successes", arm), _shift("covariate_rate", "covariate", arm)
        lever, covariate_lever, n_sq = pl.col("lever"), pl.col("covariate_lever"), pl.col("n_sq")
        moved = buckets.with_columns(
            sq_residuals=moved_residuals(pl.col("sq_residuals"), lever, lever, n_sq, d, d),
            cross_residuals=moved_residuals(pl.col("cross_residuals"), lever, covariate_lever, n_sq, d, e),
            covariate_sq_residuals=moved_residuals(
                pl.col("covariate_sq_residuals"), covariate_lever, covariate_lever, n_sq, e, e
            ),
        )
        pooled = moved.group_by(arm).agg(pl.col(*_ARM_STATS).sum()).sort(arm)
    no_days = pl.col("user_days") == 0  # as one pass over the users gives: R = 0 / 0
    return pooled.select(*arm, *_ARM_STATS).with_columns(
        pl.when(no_days).then(float("nan")).otherwise(pl.col(c)).alias(c) for c in _RESIDUALS
    )


def _shift(rate: str, total: str, arm: list[str]) -> pl.Expr:
    """A bucket's rate minus its arm's pooled rate (sum of `total` over sum n; 0 where sum n = 0)."""
    days = pl.col("user_days").sum().over(arm)
    return pl.col(rate) - pl.when(days != 0).then(pl.col(total).sum().over(arm) / days).otherwise(0.0)


def valued_outputs(frame: pl.DataFrame) -> pl.DataFrame:
    """The contract's columns of cluster rows: numerator and denominator sums; for a ratio or mean metric the
    success counts are NULL and `*_user_days` the days measured."""
    share = pl.col("metric_kind").is_in(["share", "time_to_event"])  # counts of days the condition held
    return frame.with_columns(
        **{f"{arm}_numerator": pl.col(f"{arm}_successes") for arm in ("treatment", "holdout")},
        **{f"{arm}_denominator": pl.col(f"{arm}_user_days") for arm in ("treatment", "holdout")},
    ).with_columns(
        **{f"{arm}_successes": pl.when(share).then(pl.col(f"{arm}_successes")) for arm in ("treatment", "holdout")},
        **{
            f"{arm}_user_days": pl.when(share).then(pl.col(f"{arm}_user_days")).otherwise(pl.col(f"{arm}_days"))
            for arm in ("treatment", "holdout")
        },
    )


def _kinds(goals: Sequence[Goal], metrics: Mapping[str, Metric] | None) -> dict[tuple[str, str], str]:
    """(goal id, metric id) -> the metric's kind (share without `metrics`)."""
    return {
        (goal.id, metric_id): metrics[metric_id].kind if metrics else "share"
        for goal, _kind, metric_id in measurements(goals)
    }


def _with_kinds(counts: pl.DataFrame, metrics: Mapping[str, Metric] | None) -> pl.DataFrame:
    """`metric_kind` and `direction` of each row: the metric's (`Metric.goal_direction`, `guardrail_direction`);
    without `metrics`, a goal's increase and a guardrail's decrease (must not rise)."""
    metrics = metrics or {}
    kinds = {m.id: m.kind for m in metrics.values()}
    as_goal = {m.id: m.goal_direction() for m in metrics.values()}
    as_guardrail = {m.id: m.guardrail_direction() for m in metrics.values()}
    goal = pl.col("kind") == "goal"
    return counts.with_columns(
        metric_kind=pl.col("metric").replace_strict(kinds, default="share", return_dtype=pl.String),
        direction=pl.when(goal)
        .then(pl.col("metric").replace_strict(as_goal, default="increase", return_dtype=pl.String))
        .otherwise(pl.col("metric").replace_strict(as_guardrail, default="decrease", return_dtype=pl.String)),
    )


_ARM_STATS = (
    "users",
    "user_days",
    "successes",
    "days",
    "sq_residuals",
    "covariate",
    "cross_residuals",
    "covariate_sq_residuals",
    "exposed_users",
    "exposed_user_days",
    "exposed_successes",
)


_COUNTS_SCHEMA = {
    "goal_id": pl.String,
    "metric": pl.String,
    "kind": pl.String,
    "campaign_id": pl.String,
    "target": pl.Float64,
    "holdout_share": pl.Float64,
    "margin": pl.Float64,
    **{c: pl.Int64 for c in _COUNT_COLUMNS},
}


def measurements(goals: Sequence[Goal]) -> list[tuple[Goal, str, str]]:
    """(goal, kind, metric id) for each goal's metric, then its guardrails."""
    return [
        (goal, kind, metric_id)
        for goal in goals
        for kind, metric_id in [("goal", goal.metric), *(("guardrail", g) for g in goal.guardrails)]
    ]


def _count_row(goal: Goal, kind: str, metric_id: str, holdout_share: float, counts: dict[str, tuple[int, int]]) -> dict:
    treatment_users, treatment_successes = counts.get("treatment", (0, 0))
    holdout_users, holdout_successes = counts.get("holdout", (0, 0))
    return {
        "goal_id": goal.id,
        "metric": metric_id,
        "kind": kind,
        "campaign_id": goal.campaign,
        "target": goal.target_relative_lift if kind == "goal" else None,
        "holdout_share": holdout_share,
        "margin": goal.guardrail_margin(metric_id) if kind == "guardrail" else None,
        "treatment_users": treatment_users,
        "holdout_users": holdout_users,
        "treatment_successes": treatment_successes,
        "holdout_successes": holdout_successes,
    }


def finish_rows(table: pl.DataFrame, ds: date, window: str) -> pa.Table:
    if "treatment_numerator" not in table.columns:  # share day rows: successes of users
        table = valued_outputs(table.with_columns(treatment_days=pl.lit(None), holdout_days=pl.lit(None)))
    table = table.with_columns(ds=pl.lit(ds, pl.Date), window=pl.lit(window))
    missing = [name for name in GOAL_METRICS_SCHEMA.names if name not in table.columns]  # kind-specific columns
    table = table.with_columns(pl.lit(None).alias(name) for name in missing)
    table = table.sort("goal_id", pl.col("kind") != "goal", "metric")
    return table.select(GOAL_METRICS_SCHEMA.names).to_arrow().cast(GOAL_METRICS_SCHEMA)
