"""Time to event: days from an anchor to the first day a metric's event holds, compared between a campaign's arms
by the restricted mean time to event (RMST), censoring included.

A `time_to_event` metric (pyramid.yaml `metrics`, `kind: time_to_event`) names its event in `condition` (a user
has it on day d when the condition holds on the user's `user_daily` columns summed over the `window_days` ending
on d, as for a share metric), an `anchor` and a `horizon_days` H. Its direction is `decrease` unless declared.

Who counts (intent to treat): the users of the goal's `goal_cohort` (arm and entry as for every goal), whose anchor
is known and inside history: `signup` = the UTC date of signup_at (the features' as_of - tenure_days) on or after
the start of history and on or after the first activity day the anchoring run reads (so that it sees every day
since the anchor); `first_exposure` = the cohort's `exposed_ds`. goal_cohort carries, per such
user, `anchor_ds` and `event_ds` (the first day on or after the anchor the event held, on the activity known at
each run; NULL while not yet). On ds, the user's time is T = event_ds - anchor_ds (an event), else the user is
censored at C = ds - anchor_ds (T > C: followed up to ds without the event). Users anchored after ds are left out.

Statistics, per arm (T in whole days, 0 = the anchor's own day; Kaplan-Meier at the distinct event times t_j with
n_j users at risk, time >= t_j, and d_j events):
- S(t) = prod_{t_j <= t} (1 - d_j / n_j); RMST = sum_{t=0}^{H-1} S(t) = E[min(T, H)], the area under the KM
  curve up to the horizon (Royston & Parmar 2013; Uno et al. 2014).
- Var(RMST) = sum_{t_j < H} A_j^2 d_j / (n_j (n_j - d_j)), A_j = sum_{t=t_j}^{H-1} S(t) (Greenwood-based; a term
  with n_j = d_j is 0).
- share within the horizon = 1 - S(H - 1), the KM share reaching the event on days 0 .. H - 1.
- change = RMST_t / RMST_h - 1; its interval by the delta method on log(RMST_t / RMST_h) with
  se = sqrt(Var_t / RMST_t^2 + Var_h / RMST_h^2), then the same always-valid / fixed-horizon intervals, Holm
  level and status as the other to-date rows (assets.decisions; direction decrease: met when the interval lies
  below 0 and the change is at or below the target).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl
import pyarrow as pa

from assets.metrics import ACTIVITY, metric_days_sql
from assets.pyramid_map import Goal, Metric
from assets.sql_guard import sandboxed_connection

KIND = "time_to_event"
# goal_cohort's columns for a time-to-event goal's users (NULL on every other row)
EVENT_COLUMNS = [("anchor_ds", pa.date32()), ("event_ds", pa.date32())]
_KEY = ["goal_id", "metric", "campaign_id", "arm", "user_id"]


def is_time_to_event(metric: Metric) -> bool:
    return metric.kind == KIND


# --- statistics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rmst:
    """One arm's Kaplan-Meier summary up to the horizon."""

    users: int
    events: int  # events observed before the horizon (T < H)
    censored: int  # users followed less than H days without the event
    rmst: float | None
    variance: float | None
    share_within: float | None  # 1 - S(H - 1)
    days_at_risk: int  # sum of min(time, H)


def kaplan_meier_rmst(times: np.ndarray, events: np.ndarray, horizon: int) -> Rmst:
    """RMST up to `horizon` days, its Greenwood-based variance and the share reaching the event within it (module
    docstring). `times` in whole days (>= 0), `events` True for an event at that time, False for censored."""
    times, events = np.asarray(times, dtype=np.int64), np.asarray(events, dtype=bool)
    n = len(times)
    events_within = int((events & (times < horizon)).sum())
    censored = int((~events & (times < horizon - 1)).sum())  # censored at C: still unknown whether T < H
    at_risk_days = int(np.minimum(times + (~events), horizon).sum())
    if n == 0:
        return Rmst(0, 0, 0, None, None, None, 0)
    event_times, deaths = np.unique(times[events & (times < horizon)], return_counts=True)
    at_risk = n - np.searchsorted(np.sort(times), event_times, side="left")
    factors = np.ones(horizon)
    factors[event_times] = 1 - deaths / at_risk
    survival = np.cumprod(factors)  # S(t), t = 0 .. H-1
    tail = np.cumsum(survival[::-1])[::-1]  # A at each grid day: sum_{t >= day} S(t)
    safe = at_risk > deaths
    terms = np.where(safe, tail[event_times] ** 2 * deaths / np.where(safe, at_risk * (at_risk - deaths), 1), 0.0)
    return Rmst(
        users=n,
        events=events_within,
        censored=censored,
        rmst=float(tail[0]),
        variance=float(terms.sum()),
        share_within=float(1 - survival[-1]),
        days_at_risk=at_risk_days,
    )


def log_rmst_ratio(treatment: Rmst, holdout: Rmst) -> tuple[float | None, float | None]:
    """(log(RMST_t / RMST_h), its delta-method standard error); None where an arm has no positive RMST."""
    if not treatment.rmst or not holdout.rmst or treatment.variance is None or holdout.variance is None:
        return None, None
    se = np.sqrt(treatment.variance / treatment.rmst**2 + holdout.variance / holdout.rmst**2)
    return float(np.log(treatment.rmst / holdout.rmst)), float(se)


def times_and_events(users: pl.DataFrame, ds: date) -> pl.DataFrame:
    """Per user with an anchor on or before ds: `time` (days) and `event` (False: censored at ds)."""
    anchored = users.filter(pl.col("anchor_ds").is_not_null() & (pl.col("anchor_ds") <= ds))
    reached = pl.col("event_ds").is_not_null() & (pl.col("event_ds") <= ds)
    end = pl.when(reached).then(pl.col("event_ds")).otherwise(pl.lit(ds, pl.Date))
    return anchored.with_columns(time=(end - pl.col("anchor_ds")).dt.total_days(), event=reached)


# --- goal_cohort: anchors and first events ------------------------------------------------------


def with_event_days(
    cohort: pa.Table,
    previous: pa.Table | None,
    activity: pa.Table,
    goals: Sequence[Goal],
    metrics: Mapping[str, Metric],
    signups: pa.Table | None,
    ds: date,
    start: date,
    first_day: date | None = None,
) -> pa.Table:
    """goal_cohort for ds with `anchor_ds` and `event_ds` (module docstring): carried from the partition of ds - 1,
    anchors set for users anchored since, first events found on the activity read on ds (`activity`, the days
    the run reads). `signups`: user_id, signup_ds (None when no metric is anchored on signup). `first_day`: the
    first day of the activity read, when `activity` holds one bucket of it (`assets.goal_day`)."""
    frame = pl.from_arrow(cohort)
    carried = _carried(previous)
    frame = frame.join(carried, on=_KEY, how="left") if carried is not None else _null_event_columns(frame)
    first_day = _first_activity_day(activity, ds, start) if first_day is None else first_day
    parts = [frame.filter(~_tte_rows(goals, metrics))]
    for goal in goals:
        metric = metrics[goal.metric]
        if not is_time_to_event(metric):
            continue
        rows = frame.filter((pl.col("goal_id") == goal.id) & (pl.col("metric") == goal.metric))
        rows = _anchored(rows, metric, signups, first_day, start)
        parts.append(_first_events(rows, activity, metric, first_day, ds))
    schema = cohort.schema
    for name, dtype in EVENT_COLUMNS:
        schema = schema.append(pa.field(name, dtype))
    merged = pl.concat([p.select(schema.names) for p in parts]).sort(_KEY)
    return merged.to_arrow().cast(schema)


def _tte_rows(goals: Sequence[Goal], metrics: Mapping[str, Metric]) -> pl.Expr:
    pairs = [f"{g.id}\x1f{g.metric}" for g in goals if is_time_to_event(metrics[g.metric])]
    return pl.concat_str("goal_id", "metric", separator="\x1f").is_in(pairs)


def _carried(previous: pa.Table | None) -> pl.DataFrame | None:
    if previous is None or "anchor_ds" not in previous.column_names:
        return None
    return pl.from_arrow(previous.select([*_KEY, "anchor_ds", "event_ds"]))


def _null_event_columns(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(anchor_ds=pl.lit(None, pl.Date), event_ds=pl.lit(None, pl.Date))


def _first_activity_day(activity: pa.Table, ds: date, start: date) -> date:
    days = activity.column("activity_date").to_pylist() if activity.num_rows else []
    return max(min(days, default=ds), start)


def _anchored(
    rows: pl.DataFrame, metric: Metric, signups: pa.Table | None, first_day: date, start: date
) -> pl.DataFrame:
    """Set the anchor of rows without one: signup in history and within the activity read, or first exposure."""
    if metric.anchor == "first_exposure":
        anchor = pl.col("exposed_ds")
    else:
        known = pl.from_arrow(signups) if signups is not None else pl.DataFrame(schema={"user_id": pl.String})
        if "signup_ds" not in known.columns:
            known = known.with_columns(signup_ds=pl.lit(None, pl.Date))
        rows = rows.join(known.select("user_id", "signup_ds"), on="user_id", how="left")
        in_history = (pl.col("signup_ds") >= start) & (pl.col("signup_ds") >= first_day)
        anchor = pl.when(in_history).then(pl.col("signup_ds"))
    return rows.with_columns(anchor_ds=pl.coalesce("anchor_ds", anchor))


def _first_events(rows: pl.DataFrame, activity: pa.Table, metric: Metric, first_day: date, ds: date) -> pl.DataFrame:
    """event_ds = the earlier of the carried one and the first day of the activity read on or after the anchor on
    which the event held."""
    waiting = rows.filter(pl.col("anchor_ds").is_not_null() & (pl.col("anchor_ds") <= ds))
    days = [first_day + timedelta(days=k) for k in range((ds - first_day).days + 1)]
    if waiting.is_empty() or not days:
        return rows
    con = sandboxed_connection()
    try:
        con.register(ACTIVITY, activity)
        con.register("_anchored", waiting.select("user_id", "anchor_ds").unique().to_arrow())
        sql = metric_days_sql(metric, days, activity.column_names, "_anchored", ACTIVITY)
        found = con.sql(
            f"SELECT a.user_id, a.anchor_ds, min(i.day) AS _found FROM _anchored a JOIN ({sql}) i USING (user_id)"
            " WHERE i.success AND i.day >= a.anchor_ds GROUP BY ALL"
        ).to_arrow_table()
    finally:
        con.close()
    return rows.join(pl.from_arrow(found), on=["user_id", "anchor_ds"], how="left").with_columns(
        event_ds=pl.min_horizontal("event_ds", "_found")
    )


# --- goal rows ----------------------------------------------------------------------------------


def with_time_to_event(
    counts: pl.DataFrame, cohort: pa.Table | None, goals: Sequence[Goal], metrics: Mapping[str, Metric], ds: date
) -> pl.DataFrame:
    """To-date count rows with each time-to-event goal row's arm figures replaced by its KM summary: users, events
    within the horizon (`successes`), days at risk (`user_days`), and the estimate the decisions use
    (`own_estimate`, `estimate_treatment`, `estimate_holdout` = RMST per arm, `estimate_log_se`), `censored` and
    `share_within` per arm. Each row's `direction` is already set (`assets.goals._with_kinds`)."""
    frame = counts.with_columns(
        own_estimate=pl.lit(False),
        **{c: pl.lit(None, pl.Float64) for c in ESTIMATE_COLUMNS},
        **{f"{a}_{c}": pl.lit(None, dtype) for a in ("treatment", "holdout") for c, dtype in _ARM_EXTRAS.items()},
    )
    users = _cohort_times(cohort, ds)
    for goal in goals:
        metric = metrics[goal.metric]
        if not is_time_to_event(metric):
            continue
        mine = users.filter((pl.col("goal_id") == goal.id) & (pl.col("metric") == goal.metric))
        arms = {arm: _arm_summary(mine, arm, metric.horizon_days) for arm in ("treatment", "holdout")}
        frame = _replace_row(frame, goal, arms)
    return frame


ESTIMATE_COLUMNS = ["estimate_treatment", "estimate_holdout", "estimate_log_se"]
_ARM_EXTRAS = {"censored": pl.Int64, "share_within": pl.Float64}


def _cohort_times(cohort: pa.Table | None, ds: date) -> pl.DataFrame:
    if cohort is None or "anchor_ds" not in cohort.column_names:
        schema = {**{k: pl.String for k in _KEY}, "time": pl.Int64, "event": pl.Boolean}
        return pl.DataFrame(schema=schema)
    frame = pl.from_arrow(cohort.select([*_KEY, "anchor_ds", "event_ds"]))
    return times_and_events(frame, ds)


def _arm_summary(users: pl.DataFrame, arm: str, horizon: int) -> Rmst:
    of_arm = users.filter(pl.col("arm") == arm)
    return kaplan_meier_rmst(of_arm["time"].to_numpy(), of_arm["event"].to_numpy(), horizon)


def _replace_row(frame: pl.DataFrame, goal: Goal, arms: dict[str, Rmst]) -> pl.DataFrame:
    _log_rr, se = log_rmst_ratio(arms["treatment"], arms["holdout"])
    values: dict[str, object] = {"own_estimate": True, "estimate_log_se": se}
    for arm, summary in arms.items():
        values |= {
            f"estimate_{arm}": summary.rmst,
            f"{arm}_users": summary.users,
            f"{arm}_successes": summary.events,
            f"{arm}_user_days": summary.days_at_risk,
            f"{arm}_censored": summary.censored,
            f"{arm}_share_within": summary.share_within,
        }
    row = (pl.col("goal_id") == goal.id) & (pl.col("kind") == "goal")
    return frame.with_columns(
        **{
            name: pl.when(row).then(pl.lit(value, frame.schema[name])).otherwise(pl.col(name))
            for name, value in values.items()
        }
    )
