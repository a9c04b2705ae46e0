"""Profiles and erasure requests: each user's first profile, the daily updates, the requests to be forgotten."""

from __future__ import annotations

import numpy as np

from pipelines.sample.population import PLANS, Population
from pipelines.sample.rows import concat
from pipelines.sample.spec import DAY_US, Spec, time_of_day

PROFILE_UPDATE_RATE = 0.002  # per known user and day
PROFILE_UPDATE_KINDS = (0.5, 0.3, 0.2)  # plan change, consent_personalization flip, consent_marketing flip


def generate_profiles(spec: Spec, pop: Population) -> dict[str, np.ndarray]:
    """First profiles (day 0, or the signup day), then a few updates a day: plan or consent changes."""
    rng = spec.rng("profiles")
    last_update = pop.signup_us + (rng.random(pop.n) * (spec.start_us - pop.signup_us).clip(0)).astype(np.int64)
    state = {"plan": pop.plan.copy(), "cp": pop.consent_personalization.copy(), "cm": pop.consent_marketing.copy()}
    rows = [_profile_rows(np.arange(pop.n), pop.first_day, np.where(pop.is_new, pop.signup_us, last_update), state)]
    for day in range(1, spec.days):
        who = np.flatnonzero((pop.first_day < day) & (day <= pop.last_day))
        who = who[rng.random(len(who)) < PROFILE_UPDATE_RATE]
        kind = rng.choice(3, len(who), p=PROFILE_UPDATE_KINDS)
        moved = who[kind == 0]
        state["plan"][moved] = (state["plan"][moved] + rng.integers(1, len(PLANS), len(moved))) % len(PLANS)
        state["cp"][who] ^= kind == 1
        state["cm"][who] ^= kind == 2
        updated_us = spec.day_start(day) + time_of_day(rng, len(who))
        rows.append(_profile_rows(who, np.full(len(who), day), updated_us, state))
    return concat(rows)


def _profile_rows(who: np.ndarray, day: np.ndarray, updated_us: np.ndarray, state: dict) -> dict[str, np.ndarray]:
    n = len(who)
    return {
        "user": who.astype(np.int32),
        "land": np.asarray(day, dtype=np.int32),
        "updated": updated_us.astype(np.int64),
        "plan": state["plan"][who],
        "cp": state["cp"][who],
        "cm": state["cm"][who],
        "bad_year": np.full(n, -1, dtype=np.int8),
        "defect": np.zeros(n, dtype=np.int8),
    }


def erasure_rows(spec: Spec, pop: Population) -> dict[str, np.ndarray]:
    """One erasure request per user who asks, in the order asked, landing the day it is made."""
    who = np.flatnonzero(pop.erasure_us >= 0)
    who = who[np.argsort(pop.erasure_us[who], kind="stable")]
    return {"user": who, "land": (pop.erasure_us[who] - spec.start_us) // DAY_US}
