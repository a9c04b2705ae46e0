"""The planted time-to-event effect: treated new users reach their first completed deposit sooner.

For a goal whose metric is a `time_to_event` (TIME_TO_EVENT_BEHAVIOURS), the campaign's effect e is an accelerated
failure time: a treated new user's first completed deposit, t0 microseconds after signup, happens at
signup + (1 + e) * t0 instead. t0 is the user's first completed deposit among the drawn rows, or, for a user
without one in the window, a continuation of the same daily Bernoulli process after the window (drawn from its
own random stream, never written). That row is moved (same id, same amount) or, when only the moved time falls
inside the window, added after every defect is planted (a clean row with a new id). Every other row, its id and
its defects stay exactly as drawn without the effect. The answer key records the true restricted mean time to the
event up to the metric's horizon under both arms for the same users (potential outcomes), and its ratio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assets.pyramid_map import Goal, Metric
from pipelines.sample.population import Population
from pipelines.sample.spec import DAY_US, Spec, time_of_day
from pipelines.sample.transactions import TXN_TYPES

# The generated behaviour whose first completed occurrence each time-to-event metric measures.
TIME_TO_EVENT_BEHAVIOURS: dict[str, str] = {"time_to_first_deposit": "deposit"}
COMPLETED = 0  # status code of a completed transaction
ADDED_AMOUNT_SPREAD = 0.6  # lognormal sigma of an added deposit's amount around the user's scale


@dataclass
class TimeToEventPlan:
    """What `plant_time_to_event` changed and what the answer key records."""

    added: dict[str, np.ndarray]  # clean rows to append after the defects (no day/land/seq yet: see append_added)
    truth: dict[str, dict]  # per campaign


def time_to_event_goals(goals: dict[str, Goal], metrics: dict[str, Metric]) -> dict[str, Goal]:
    """The goals (by campaign) that measure a time to event."""
    return {cid: g for cid, g in goals.items() if metrics[g.metric].kind == "time_to_event"}


def plant_time_to_event(
    spec: Spec, pop: Population, arms: dict[str, np.ndarray], txns: dict[str, np.ndarray], goals: dict[str, Goal]
) -> TimeToEventPlan:
    """Move (in place, before the defects) or add the first completed deposit of each treated new user."""
    added, truth = [], {}
    for campaign_id, goal in goals.items():
        metric = spec.map.metrics[goal.metric]
        if metric.anchor != "signup":
            raise ValueError(
                f"the sample plants time to event from signup only; {goal.metric!r} is anchored on {metric.anchor!r}"
            )
        behaviour = TIME_TO_EVENT_BEHAVIOURS[goal.metric]
        factor = 1.0 + spec.effects[campaign_id]
        users = np.flatnonzero(pop.is_new & (pop.erasure_us < 0))
        row, t0 = _first_rows(spec, pop, txns, behaviour, users)
        t1 = pop.signup_us[users] + np.round(factor * (t0 - pop.signup_us[users])).astype(np.int64)
        day1 = (t1 - spec.start_us) // DAY_US
        treated = arms[campaign_id][users] & (t1 != t0)
        moved = treated & (row >= 0)
        txns["t"][row[moved]] = t1[moved]
        txns["day"][row[moved]] = day1[moved].astype(txns["day"].dtype)
        new = treated & (row < 0) & (day1 < spec.days)
        added.append(_added_rows(spec, pop, users[new], t1[new], behaviour))
        truth[campaign_id] = _truth(spec, pop, users, t0, t1, metric.horizon_days, factor)
    rows = {k: np.concatenate([a[k] for a in added]) for k in added[0]} if added else {}
    return TimeToEventPlan(rows, truth)


def _first_rows(
    spec: Spec, pop: Population, txns: dict[str, np.ndarray], behaviour: str, users: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per user: the index of the first completed row of `behaviour` (-1: none in the window) and its time, or
    for users without one, the continuation's time (`rng("time_to_event")`)."""
    mask = (txns["ttype"] == TXN_TYPES.index(behaviour)) & (txns["status"] == COMPLETED)
    index = np.flatnonzero(mask)
    index = index[np.lexsort((txns["t"][index], txns["user"][index]))]
    who, first = np.unique(txns["user"][index], return_index=True)
    position = np.full(pop.n, -1, dtype=np.int64)
    position[who] = index[first]
    row = position[users]
    t0 = np.where(row >= 0, txns["t"][np.maximum(row, 0)], 0)
    later = np.flatnonzero(row < 0)
    rng = spec.rng("time_to_event")
    p = pop.rates.get(f"{behaviour}_treated", pop.rates[behaviour])[users[later]]
    days = spec.days - 1 + rng.geometric(p)
    t0[later] = spec.start_us + days * DAY_US + time_of_day(rng, len(later))
    return row, t0


def _added_rows(spec: Spec, pop: Population, who: np.ndarray, t: np.ndarray, behaviour: str) -> dict[str, np.ndarray]:
    rng = spec.rng("time_to_event", 1)
    n = len(who)
    amount = pop.rates[f"scale_{behaviour}"][who] * rng.lognormal(0.0, ADDED_AMOUNT_SPREAD, n)
    return {
        "user": who.astype(np.int32),
        "ttype": np.full(n, TXN_TYPES.index(behaviour), dtype=np.int8),
        "t": t.astype(np.int64),
        "amount": np.round(amount, 2).clip(0.01),
        "status": np.full(n, COMPLETED, dtype=np.int8),
        "merchant": np.full(n, -1, dtype=np.int8),
        "currency": pop.currency[who],
        "land": ((t - spec.start_us) // DAY_US).astype(np.int32),
    }


def _truth(
    spec: Spec, pop: Population, users: np.ndarray, t0: np.ndarray, t1: np.ndarray, horizon: int, factor: float
) -> dict:
    """The true RMST up to the horizon under each arm for the same users (consented new users, as the pipeline's
    audience), T in whole UTC days from the signup day; censoring at the horizon: min(T, H)."""
    day0 = (pop.signup_us[users] - spec.start_us) // DAY_US
    keep = pop.consent_personalization[users]
    times = {arm: ((t - spec.start_us) // DAY_US - day0)[keep] for arm, t in (("holdout", t0), ("treatment", t1))}
    rmst = {arm: float(np.minimum(t, horizon).mean()) if len(t) else None for arm, t in times.items()}
    share = {arm: float((t < horizon).mean()) if len(t) else None for arm, t in times.items()}
    ratio = rmst["treatment"] / rmst["holdout"] if rmst["holdout"] else None
    return {
        "time_ratio": factor,
        "horizon_days": horizon,
        "users": int(keep.sum()),
        "rmst_holdout": round(rmst["holdout"], 6) if rmst["holdout"] is not None else None,
        "rmst_treatment": round(rmst["treatment"], 6) if rmst["treatment"] is not None else None,
        "rmst_relative_change": round(ratio - 1, 6) if ratio is not None else None,
        "share_within_horizon_holdout": round(share["holdout"], 6) if share["holdout"] is not None else None,
        "share_within_horizon_treatment": round(share["treatment"], 6) if share["treatment"] is not None else None,
    }
