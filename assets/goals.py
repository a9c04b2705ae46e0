"""Goals: per goal and day, the campaign's treatment against its holdout, on the goal's metric and
on each guardrail metric.

Metric (pyramid.yaml `metrics`): a user succeeds on day d when the condition holds on the user's
`user_daily` columns summed over the `window_days` ending on d (activity dates d - window_days + 1 .. d,
all landing partitions summed). A user with no rows in the window is evaluated on zero-filled sums;
a condition that evaluates to NULL counts as not satisfied. `metric_indicator_sql` builds this and
`north_star.py` reuses it. Conditions are re-checked with `sql_guard.require_safe` and run on a
sandboxed DuckDB connection.

Statistics, per row (treatment t, holdout h; n users, s successes; value p = s / n):
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
  under treatment), else `ok`.

`to_date` rows sum the `day` rows of the goal, metric and campaign up to d: users and successes are
user-days. The approximation treats the user-days as independent trials; a user measured on many days
counts many times, so the interval is narrower than a per-user analysis would give, more so the more
the audience repeats from day to day. The sample ratio check of a `to_date` row uses the mean daily arm
sizes (summing user-days would multiply the chi-square by the number of days and fail on noise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from assets.features import DAILY_AMOUNTS, DAILY_COUNTS
from assets.pyramid_map import Campaign, Goal, Metric
from assets.segments import sandboxed_connection
from assets.sql_guard import require_safe

METRIC_COLUMNS = [*DAILY_COUNTS, *DAILY_AMOUNTS]
Z_95 = 1.959963984540054
SRM_MIN_P_VALUE = 0.001
GOAL_METRICS_SCHEMA = pa.schema([
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
    ("treatment_value", pa.float64()),
    ("holdout_value", pa.float64()),
    ("lift", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("p_value", pa.float64()),
    ("srm_p_value", pa.float64()),
    ("srm_ok", pa.bool_()),
    ("target", pa.float64()),
    ("status", pa.string()),
])
_COUNT_COLUMNS = ["treatment_users", "holdout_users", "treatment_successes", "holdout_successes"]


# --- metrics: per-user indicators ---------------------------------------------------------------

def metric_window(metric: Metric, ds: date) -> tuple[date, date]:
    """First and last activity date of the metric's window ending on `ds`."""
    return ds - timedelta(days=metric.window_days - 1), ds


def metric_indicator_sql(metric: Metric, ds: date, activity_columns: Sequence[str], users: str, activity: str) -> str:
    """SQL giving `user_id, success` for every distinct user of the relation `users`.

    `activity` is a relation of user_daily rows with `activity_columns`; the metric columns among them
    are summed over the window and zero-filled for users without rows, then the condition is applied.
    """
    summed = [c for c in METRIC_COLUMNS if c in set(activity_columns)]
    condition = require_safe(metric.condition, summed, where=f"metric {metric.id!r}")
    first, last = metric_window(metric, ds)
    sums = ", ".join(["user_id", *(f"sum({c}) AS {c}" for c in summed)])
    filled = ", ".join(["u.user_id", *(f"coalesce(s.{c}, 0) AS {c}" for c in summed)])
    return f"""
        WITH window_sums AS (
            SELECT {sums} FROM {activity}
            WHERE activity_date BETWEEN DATE '{first.isoformat()}' AND DATE '{last.isoformat()}'
            GROUP BY user_id
        ), zero_filled AS (
            SELECT {filled} FROM (SELECT DISTINCT user_id FROM {users}) u LEFT JOIN window_sums s USING (user_id)
        )
        SELECT user_id, coalesce(({condition}), false) AS success FROM zero_filled"""


def arm_counts(
    con: duckdb.DuckDBPyConnection,
    metric: Metric,
    ds: date,
    cohort: str,
    activity: str,
    activity_columns: Sequence[str],
) -> dict[str, tuple[int, int]]:
    """{arm: (users, successes)} of the relation `cohort` (user_id, arm) on the metric ending on `ds`."""
    indicator = metric_indicator_sql(metric, ds, activity_columns, users=cohort, activity=activity)
    rows = con.sql(
        f"""SELECT c.arm, count(*), count(*) FILTER (WHERE i.success)
            FROM (SELECT DISTINCT user_id, arm FROM {cohort}) c JOIN ({indicator}) i USING (user_id)
            GROUP BY c.arm"""
    ).fetchall()
    return {arm: (int(users), int(successes)) for arm, users, successes in rows}


def campaign_cohort(campaign_id: str) -> str:
    """The relation of one campaign's audience in `_audiences` (as registered by the callers)."""
    return f"(SELECT user_id, arm FROM _audiences WHERE campaign_id = '{campaign_id.replace(chr(39), chr(39) * 2)}')"


def register_inputs(con: duckdb.DuckDBPyConnection, audiences: pa.Table | None, activity: pa.Table) -> None:
    """Register `_audiences` (empty when None) and `_activity` on the connection."""
    empty = pa.table({"campaign_id": pa.array([], pa.string()), "user_id": pa.array([], pa.string()),
                      "arm": pa.array([], pa.string())})
    con.register("_audiences", empty if audiences is None else audiences.select(["campaign_id", "user_id", "arm"]))
    con.register("_activity", activity)


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
    holdouts = {c.id: c.holdout for c in campaigns}
    con = sandboxed_connection()
    try:
        register_inputs(con, audiences_prev, activity)
        rows = [
            _count_row(goal, kind, metric_id, holdouts[goal.campaign], arm_counts(
                con, metrics[metric_id], ds, campaign_cohort(goal.campaign), "_activity", activity.column_names))
            for goal, kind, metric_id in _measurements(goals)
        ]
    finally:
        con.close()
    counts = pl.DataFrame(rows, schema=_COUNTS_SCHEMA).with_columns(
        srm_treatment=pl.col("treatment_users").cast(pl.Float64),
        srm_holdout=pl.col("holdout_users").cast(pl.Float64),
    )
    return _finish(counts, ds, "day")


def goal_to_date(day_rows: pa.Table, ds: date, goals: Sequence[Goal], campaigns: Sequence[Campaign]) -> pa.Table:
    """Window `to_date` rows for `ds`: the `day` rows of each goal's metric and guardrails (for the
    goal's current campaign) up to and including ds, summed as user-days (see the module docstring)."""
    holdouts = {c.id: c.holdout for c in campaigns}
    wanted = pl.DataFrame(
        [_count_row(goal, kind, metric_id, holdouts[goal.campaign], {})
         for goal, kind, metric_id in _measurements(goals)],
        schema=_COUNTS_SCHEMA,
    ).drop(_COUNT_COLUMNS)
    days = (
        pl.from_arrow(day_rows.select(["ds", "goal_id", "metric", "campaign_id", "window", *_COUNT_COLUMNS]))
        .filter(pl.col("window") == "day", pl.col("ds") <= ds)
        .group_by("goal_id", "metric", "campaign_id")
        .agg(*(pl.col(c).sum().cast(pl.Int64) for c in _COUNT_COLUMNS), days=pl.len())
    )
    counts = (
        wanted.join(days, on=["goal_id", "metric", "campaign_id"], how="left")
        .with_columns(pl.col(*_COUNT_COLUMNS).fill_null(0), pl.col("days").fill_null(0))
        .with_columns(
            srm_treatment=pl.col("treatment_users") / pl.col("days").clip(lower_bound=1),
            srm_holdout=pl.col("holdout_users") / pl.col("days").clip(lower_bound=1),
        )
    )
    return _finish(counts, ds, "to_date")


_COUNTS_SCHEMA = {
    "goal_id": pl.String, "metric": pl.String, "kind": pl.String, "campaign_id": pl.String,
    "target": pl.Float64, "holdout_share": pl.Float64,
    **{c: pl.Int64 for c in _COUNT_COLUMNS},
}


def _measurements(goals: Sequence[Goal]) -> list[tuple[Goal, str, str]]:
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
        "goal_id": goal.id, "metric": metric_id, "kind": kind, "campaign_id": goal.campaign,
        "target": goal.target_relative_lift if kind == "goal" else None, "holdout_share": holdout_share,
        "treatment_users": treatment_users, "holdout_users": holdout_users,
        "treatment_successes": treatment_successes, "holdout_successes": holdout_successes,
    }


def _finish(counts: pl.DataFrame, ds: date, window: str) -> pa.Table:
    table = with_statistics(counts).with_columns(ds=pl.lit(ds, pl.Date), window=pl.lit(window))
    table = table.sort("goal_id", pl.col("kind") != "goal", "metric")
    return table.select(GOAL_METRICS_SCHEMA.names).to_arrow().cast(GOAL_METRICS_SCHEMA)


# --- statistics ---------------------------------------------------------------------------------

def with_statistics(counts: pl.DataFrame) -> pl.DataFrame:
    """Add values, lift, CI, p-value, sample ratio check and status (module docstring) to count rows.

    Needs the four count columns, `srm_treatment`, `srm_holdout` (arm sizes for the sample ratio
    check), `holdout_share`, `kind` and `target`.
    """
    nt, nh = pl.col("treatment_users"), pl.col("holdout_users")
    st, sh = pl.col("treatment_successes"), pl.col("holdout_successes")
    return (
        counts.with_columns(
            treatment_value=_ratio(st, nt),
            holdout_value=_ratio(sh, nh),
            _log_ratio=_log_ratio_and_se(nt, nh, st, sh),
            _pooled=_ratio(st + sh, nt + nh),
            _srm_chi2=_srm_chi_square(pl.col("srm_treatment"), pl.col("srm_holdout"), pl.col("holdout_share")),
        )
        .unnest("_log_ratio")
        .with_columns(
            lift=pl.when(pl.col("holdout_value") > 0).then(pl.col("treatment_value") / pl.col("holdout_value") - 1),
            ci_low=(pl.col("_log_rr") - Z_95 * pl.col("_log_rr_se")).exp() - 1,
            ci_high=(pl.col("_log_rr") + Z_95 * pl.col("_log_rr_se")).exp() - 1,
            p_value=_two_proportion_p_value(nt, nh),
            srm_p_value=_erfc((pl.col("_srm_chi2") / 2).sqrt()),
        )
        .with_columns(srm_ok=pl.col("srm_p_value") >= SRM_MIN_P_VALUE)
        .with_columns(status=_status())
    )


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator > 0).then(numerator / denominator)


def _log_ratio_and_se(nt: pl.Expr, nh: pl.Expr, st: pl.Expr, sh: pl.Expr) -> pl.Expr:
    """log(p_t / p_h) and its delta-method standard error, Haldane-Anscombe corrected on a zero arm."""
    zero_cell = (st == 0) | (sh == 0)
    st_c, sh_c = pl.when(zero_cell).then(st + 0.5).otherwise(st), pl.when(zero_cell).then(sh + 0.5).otherwise(sh)
    nt_c, nh_c = pl.when(zero_cell).then(nt + 1).otherwise(nt), pl.when(zero_cell).then(nh + 1).otherwise(nh)
    defined = (nt > 0) & (nh > 0)
    return pl.struct(
        _log_rr=pl.when(defined).then((st_c / nt_c).log() - (sh_c / nh_c).log()),
        _log_rr_se=pl.when(defined).then((1 / st_c - 1 / nt_c + 1 / sh_c - 1 / nh_c).sqrt()),
    )


def _two_proportion_p_value(nt: pl.Expr, nh: pl.Expr) -> pl.Expr:
    pooled = pl.col("_pooled")
    se = (pooled * (1 - pooled) * (1 / nt + 1 / nh)).sqrt()
    z = (pl.col("treatment_value") - pl.col("holdout_value")) / se
    return (
        pl.when((nt == 0) | (nh == 0)).then(None)
        .when(se == 0).then(1.0)
        .otherwise(_erfc(z.abs() / math.sqrt(2)))
    )


def _srm_chi_square(treatment: pl.Expr, holdout: pl.Expr, holdout_share: pl.Expr) -> pl.Expr:
    total = treatment + holdout
    expected_t, expected_h = total * (1 - holdout_share), total * holdout_share
    chi2 = (treatment - expected_t) ** 2 / expected_t + (holdout - expected_h) ** 2 / expected_h
    return pl.when(total > 0).then(chi2)


def _erfc(x: pl.Expr) -> pl.Expr:
    """Complementary error function, element-wise (math.erfc over the few statistic rows)."""
    vectorized = np.vectorize(math.erfc, otypes=[float])
    return x.map_batches(
        lambda s: pl.Series(vectorized(s.cast(pl.Float64).to_numpy()), dtype=pl.Float64).fill_nan(None),
        return_dtype=pl.Float64,
    )


def _status() -> pl.Expr:
    empty_arm = (pl.col("treatment_users") == 0) | (pl.col("holdout_users") == 0)
    significant_rise = pl.col("ci_low") > 0
    at_target = (
        pl.when(pl.col("holdout_value") == 0).then(pl.col("treatment_value") > 0)  # infinite lift
        .otherwise(pl.col("lift") >= pl.col("target"))
    )
    goal_status = (
        pl.when(significant_rise & at_target).then(pl.lit("met"))
        .when(pl.col("ci_high") < pl.col("target")).then(pl.lit("not_met"))
        .otherwise(pl.lit("inconclusive"))
    )
    guardrail_status = pl.when(significant_rise).then(pl.lit("breached")).otherwise(pl.lit("ok"))
    return (
        pl.when(empty_arm).then(pl.lit("no_data"))
        .when(pl.col("srm_ok").not_()).then(pl.lit("srm_fail"))
        .when(pl.col("kind") == "goal").then(goal_status)
        .otherwise(guardrail_status)
    )
