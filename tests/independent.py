"""A second, deliberately simple computation of the pipeline's headline numbers, straight from the
landing files with the standard library: no DuckDB, no Polars, no code from `assets/`.

It re-implements only the rules the numbers depend on (contracts.md, "Cleaning rules"), row by row.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

EVENT_TYPES = {
    "session_start",
    "page_view",
    "screen_view",
    "search",
    "feature_use",
    "impression",
    "click",
    "conversion",
    "unsubscribe",
}
TXN_TYPES = {"deposit", "card_payment", "transfer_in", "transfer_out"}
CURRENCIES = {"EUR", "USD", "GBP"}
MAX_AMOUNT = 1_000_000
SKEW = timedelta(minutes=5)


def landing_days(landing: Path) -> list[date]:
    return sorted(date.fromisoformat(p.name) for p in (landing / "events").iterdir() if p.is_dir())


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.astimezone(UTC) if value.tzinfo else None


def _csv_rows(landing: Path, source: str, ds: date) -> list[dict]:
    rows = []
    for path in sorted((landing / source / ds.isoformat()).glob("*.csv")):
        with path.open(newline="") as handle:
            rows += list(csv.DictReader(handle))
    return rows


def _jsonl_rows(landing: Path, ds: date) -> list[dict]:
    rows = []
    for path in sorted((landing / "events" / ds.isoformat()).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return rows


def _cumulative_user_ids(landing: Path, source: str) -> dict[date, set[str]]:
    """For each landing day, every user_id seen in `source` on or before that day."""
    seen: set[str] = set()
    by_day = {}
    for ds in landing_days(landing):
        seen |= {r["user_id"] for r in _csv_rows(landing, source, ds) if r.get("user_id")}
        by_day[ds] = set(seen)
    return by_day


def known_users_by_day(landing: Path) -> dict[date, set[str]]:
    """Users with a profile landed on or before each day."""
    return _cumulative_user_ids(landing, "profiles")


def erased_by_day(landing: Path) -> dict[date, set[str]]:
    """Users with an erasure request landed on or before each day."""
    return _cumulative_user_ids(landing, "erasure_requests")


def _not_future(occurred: datetime | None, ds: date) -> bool:
    end_of_day = datetime.combine(ds + timedelta(days=1), time(), tzinfo=UTC)
    return occurred is not None and occurred <= end_of_day + SKEW


def accepted_events(landing: Path) -> list[tuple[date, dict]]:
    """(landing day, event) for every event the actionable layer must accept, first delivery only."""
    known = known_users_by_day(landing)
    seen: set[str] = set()
    accepted = []
    for ds in landing_days(landing):
        for row in _jsonl_rows(landing, ds):
            occurred = parse_time(row.get("occurred_at"))
            valid = (
                row.get("event_id")
                and row.get("user_id")
                and row.get("event_type") in EVENT_TYPES
                and _not_future(occurred, ds)
                and row["user_id"] in known[ds]
            )
            if valid and row["event_id"] not in seen:
                seen.add(row["event_id"])
                accepted.append((ds, {**row, "occurred": occurred}))
    return accepted


def accepted_transactions(landing: Path) -> list[tuple[date, dict]]:
    known = known_users_by_day(landing)
    seen: set[str] = set()
    accepted = []
    for ds in landing_days(landing):
        for row in _csv_rows(landing, "transactions", ds):
            occurred = parse_time(row.get("occurred_at"))
            try:
                amount = float(row.get("amount") or "nan")
            except ValueError:
                amount = math.nan
            valid = (
                row.get("txn_id")
                and row.get("user_id")
                and _not_future(occurred, ds)
                and math.isfinite(amount)
                and 0 < amount <= MAX_AMOUNT
                and row.get("currency") in CURRENCIES
                and row.get("txn_type") in TXN_TYPES
                and row["user_id"] in known[ds]
            )
            if valid and row["txn_id"] not in seen:
                seen.add(row["txn_id"])
                accepted.append((ds, {**row, "occurred": occurred}))
    return accepted


def deposit_days(landing: Path, known_on: date) -> set[tuple[str, date]]:
    """(user, UTC day) pairs with a completed deposit, as known on `known_on`."""
    return transaction_days(landing, known_on, "deposit")


def transaction_days(landing: Path, known_on: date, txn_type: str) -> set[tuple[str, date]]:
    """(user, UTC day) pairs with a completed transaction of the type, as known on `known_on`."""
    return {
        (row["user_id"], row["occurred"].date())
        for landed, row in accepted_transactions(landing)
        if landed <= known_on and row["txn_type"] == txn_type and row["status"] == "completed"
    }


def budget_tool_days(landing: Path, known_on: date) -> set[tuple[str, date]]:
    """(user, UTC day) pairs with a use of the budgeting tool, as known on `known_on`."""
    return {
        (row["user_id"], row["occurred"].date())
        for landed, row in accepted_events(landing)
        if landed <= known_on
        and row["event_type"] == "feature_use"
        and (row.get("properties") or {}).get("feature") == "budget_tool"
    }


def metric_days(landing: Path, known_on: date, metric: str) -> set[tuple[str, date]]:
    """(user, UTC day) pairs meeting one of the sample map's day metrics, as known on `known_on`."""
    if metric == "deposit_rate":
        return transaction_days(landing, known_on, "deposit")
    if metric == "card_spend_rate":
        return transaction_days(landing, known_on, "card_payment")
    if metric == "budget_tool_rate":
        return budget_tool_days(landing, known_on)
    raise ValueError(f"no independent computation for metric {metric!r}")


def session_days(landing: Path, known_on: date) -> set[tuple[str, date]]:
    """(user, UTC day) pairs with at least one session, as known on `known_on`."""
    return {
        (row["user_id"], row["occurred"].date())
        for landed, row in accepted_events(landing)
        if landed <= known_on and row.get("session_id")
    }


def weekly_active_share(landing: Path, ds: date) -> float:
    users = known_users_by_day(landing)[ds] - erased_by_day(landing)[ds]
    window = {ds - timedelta(days=n) for n in range(7)}
    active = {user for user, day in session_days(landing, ds) if day in window} & users
    return len(active) / len(users)


def is_holdout(campaign_id: str, user_id: str, holdout: float) -> bool:
    digest = hashlib.md5(f"{campaign_id}:{user_id}".encode()).hexdigest()
    return int(digest[:13], 16) / 16**13 < holdout


def arm_successes(audience: list[str], campaign_id: str, holdout: float, successes: set[str]) -> dict:
    arms: dict[str, list[str]] = defaultdict(list)
    for user in audience:
        arms["holdout" if is_holdout(campaign_id, user, holdout) else "treatment"].append(user)
    return {
        "treatment_users": len(arms["treatment"]),
        "holdout_users": len(arms["holdout"]),
        "treatment_successes": sum(u in successes for u in arms["treatment"]),
        "holdout_successes": sum(u in successes for u in arms["holdout"]),
    }


def cluster_relative_lift(
    treatment: list[tuple[int, int]], holdout: list[tuple[int, int]]
) -> tuple[float, float, float]:
    """Relative lift of success days per user-day, treatment over holdout, and its fixed-horizon 95% interval
    with users as clusters: each arm's (days measured, success days) per user; ratio estimator R = sum x /
    sum n, Var(R) = N / (N - 1) * sum (x - R n)^2 / (sum n)^2, interval on the log of the ratio."""
    centre, se = _cluster_log_ratio(treatment, holdout)
    z = 1.959963984540054
    return math.exp(centre) - 1, math.exp(centre - z * se) - 1, math.exp(centre + z * se) - 1


def sequential_relative_interval(
    treatment: list[tuple[int, int]],
    holdout: list[tuple[int, int]],
    alpha: float,
    tuning: float = 5000.0,
    base_alpha: float = 0.05,
) -> tuple[float, float]:
    """The always-valid interval of the same lift at level `alpha`: the normal-mixture confidence sequence with
    n = users of both arms and rho^2 = (-2 log a + log(1 - 2 log a)) / tuning at the base level a
    (docs/statistics.md), half-width se * sqrt(2 (n rho^2 + 1) / (n rho^2) * log(sqrt(n rho^2 + 1) / alpha))."""
    centre, se = _cluster_log_ratio(treatment, holdout)
    rho_squared = (-2 * math.log(base_alpha) + math.log(1 - 2 * math.log(base_alpha))) / tuning
    v = (len(treatment) + len(holdout)) * rho_squared
    half = se * math.sqrt(2 * (v + 1) / v * math.log(math.sqrt(v + 1) / alpha))
    return math.exp(centre - half) - 1, math.exp(centre + half) - 1


def _cluster_log_ratio(treatment: list[tuple[int, int]], holdout: list[tuple[int, int]]) -> tuple[float, float]:
    """log(R_t / R_h) and its standard error, users as clusters."""

    def rate_and_log_variance(users: list[tuple[int, int]]) -> tuple[float, float]:
        days, successes = sum(n for n, _ in users), sum(x for _, x in users)
        rate = successes / days
        variance = len(users) / (len(users) - 1) * sum((x - rate * n) ** 2 for n, x in users) / days**2
        return rate, variance / rate**2

    rate_t, var_t = rate_and_log_variance(treatment)
    rate_h, var_h = rate_and_log_variance(holdout)
    return math.log(rate_t / rate_h), math.sqrt(var_t + var_h)


def itt_user_outcomes(
    audiences: dict[date, dict[str, str]],
    success_rows: list[tuple[str, date, date]],
    through: date,
    lookback: int = 0,
) -> dict[str, dict[str, tuple[int, int]]]:
    """Intent to treat, per arm and user: (days measured, success days) from entry to `through`.

    `audiences[d]` = {user: arm} of the campaign's audience as of d; a user enters on the first day d whose
    previous day's audience holds them and is measured on every day from then to `through`, audience or not.
    `success_rows` = (user, activity day, landing day) of activity meeting the metric; a day d counts as a
    success when such a row for d landed by min(through, d + lookback)."""
    entry: dict[str, tuple[date, str]] = {}
    for day in sorted(audiences):
        for user, arm in sorted(audiences[day].items()):
            if day + timedelta(days=1) <= through:
                entry.setdefault(user, (day + timedelta(days=1), arm))
    known = {(u, d) for u, d, landed in success_rows if landed <= min(through, d + timedelta(days=lookback))}
    arms: dict[str, dict[str, tuple[int, int]]] = {"treatment": {}, "holdout": {}}
    for user, (first, arm) in entry.items():
        days = [first + timedelta(days=k) for k in range((through - first).days + 1)]
        arms.setdefault(arm, {})[user] = (len(days), sum((user, d) in known for d in days))
    return arms


def cuped_relative_lift(
    treatment: list[tuple[int, int, float]], holdout: list[tuple[int, int, float]]
) -> tuple[float, float, float]:
    """The CUPED-adjusted relative lift and its fixed-horizon 95% interval; per user (n days, x success days,
    c pre-entry rate). With w = n c, per arm R = sum x / sum n, C = sum w / sum n; theta = pooled within-arm
    sum (x - R n)(w - C n) / sum (w - C n)^2; adjusted R~ = R - theta (C - C_pooled); Var(R~) = N / (N - 1) *
    sum ((x - R n) - theta (w - C n))^2 / (sum n)^2; interval on log(R~_t / R~_h) as for the unadjusted lift."""

    def residuals(users: list[tuple[int, int, float]]) -> tuple[float, float, list[tuple[float, float]]]:
        days = sum(n for n, _, _ in users)
        rate, cov = sum(x for _, x, _ in users) / days, sum(n * c for n, _, c in users) / days
        return rate, cov, [(x - rate * n, n * c - cov * n) for n, x, c in users]

    (r_t, c_t, e_t), (r_h, c_h, e_h) = residuals(treatment), residuals(holdout)
    theta = sum(a * b for a, b in e_t + e_h) / sum(b * b for _, b in e_t + e_h)
    pooled = sum(n * c for n, _, c in treatment + holdout) / sum(n for n, _, _ in treatment + holdout)
    log_ratio, log_variance = 0.0, 0.0
    for sign, rate, cov, errors, users in ((1, r_t, c_t, e_t, treatment), (-1, r_h, c_h, e_h, holdout)):
        adjusted = rate - theta * (cov - pooled)
        days = sum(n for n, _, _ in users)
        variance = len(users) / (len(users) - 1) * sum((a - theta * b) ** 2 for a, b in errors) / days**2
        log_ratio += sign * math.log(adjusted)
        log_variance += variance / adjusted**2
    z, se = 1.959963984540054, math.sqrt(log_variance)
    return math.exp(log_ratio) - 1, math.exp(log_ratio - z * se) - 1, math.exp(log_ratio + z * se) - 1


def kaplan_meier_rmst(followed: list[tuple[int, bool]], horizon: int) -> dict:
    """Restricted mean time to event up to `horizon` days, its Greenwood-based variance and the share reaching the
    event within it, from (days, reached) per user (reached False: still waiting after that many days), walking
    the days one by one: S(t) = P(T > t); RMST = sum of S(t) over t < horizon."""
    survival, curve, jumps = 1.0, [], []
    for day in range(horizon):
        at_risk = sum(1 for days, _ in followed if days >= day)
        reached = sum(1 for days, event in followed if event and days == day)
        if reached:
            survival *= 1 - reached / at_risk
            jumps.append((day, reached, at_risk))
        curve.append(survival)
    variance = 0.0
    for day, reached, at_risk in jumps:
        if at_risk > reached:
            area_after = sum(curve[day:])
            variance += area_after**2 * reached / (at_risk * (at_risk - reached))
    return {"rmst": sum(curve), "variance": variance, "share_within": 1 - curve[-1]}


def first_event_times(
    event_days: set[tuple[str, date]], anchors: dict[str, date], ds: date
) -> dict[str, tuple[int, bool]]:
    """Per user with an anchor on or before ds: (days from the anchor to the first event day on or after it, True),
    or (ds - anchor, False) when there is none up to ds."""
    firsts: dict[str, date] = {}
    for user, day in event_days:
        if user in anchors and anchors[user] <= day <= ds and (user not in firsts or day < firsts[user]):
            firsts[user] = day
    return {
        user: ((firsts[user] - anchor).days, True) if user in firsts else ((ds - anchor).days, False)
        for user, anchor in anchors.items()
        if anchor <= ds
    }


def touchpoint_counts(landing: Path, touchpoint: str, event_type: str) -> list[tuple[str, date, date]]:
    """(user, UTC activity day, landing day) of every accepted event of the type at the touchpoint, one per event."""
    return [
        (row["user_id"], row["occurred"].date(), landed)
        for landed, row in accepted_events(landing)
        if row["event_type"] == event_type and row.get("touchpoint_id") == touchpoint
    ]


def itt_user_sums(
    audiences: dict[date, dict[str, str]],
    numerator_rows: list[tuple[str, date, date]],
    denominator_rows: list[tuple[str, date, date]],
    through: date,
    lookback: int = 0,
) -> dict[str, dict[str, tuple[float, float]]]:
    """Intent to treat for a ratio metric of one-day windows, per arm and user: (sum of the denominator, sum of the
    numerator) over the days from entry to `through` (entry as in `itt_user_outcomes`). Each row is one unit of
    its user-day, counted when it landed by min(through, day + lookback)."""
    entry: dict[str, tuple[date, str]] = {}
    for day in sorted(audiences):
        for user, arm in sorted(audiences[day].items()):
            if day + timedelta(days=1) <= through:
                entry.setdefault(user, (day + timedelta(days=1), arm))

    def per_user(rows: list[tuple[str, date, date]]) -> dict[str, float]:
        sums: dict[str, float] = defaultdict(float)
        for user, day, landed in rows:
            if user in entry and entry[user][0] <= day <= through and landed <= min(through, day + timedelta(lookback)):
                sums[user] += 1
        return sums

    numerators, denominators = per_user(numerator_rows), per_user(denominator_rows)
    arms: dict[str, dict[str, tuple[float, float]]] = {"treatment": {}, "holdout": {}}
    for user, (_, arm) in entry.items():
        arms.setdefault(arm, {})[user] = (denominators.get(user, 0.0), numerators.get(user, 0.0))
    return arms
