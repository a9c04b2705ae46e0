"""The population: who the users are, since when they may act, how they behave, who asks to be erased."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.sample.spec import DAY_US, Spec, time_of_day

NEW_USER_SHARE = 0.10  # sign up inside the window; the others up to two years before it
MAX_TENURE_DAYS = 730
COUNTRIES = ("DE", "FR", "NL", "ES", "GB", "IE")
COUNTRY_WEIGHTS = (0.30, 0.20, 0.12, 0.15, 0.15, 0.08)
PLANS = ("basic", "plus", "premium")
PLAN_WEIGHTS = (0.60, 0.28, 0.12)
CONSENT_PERSONALIZATION_SHARE = 0.85
CONSENT_MARKETING_SHARE = 0.60
CURRENCIES = ("EUR", "USD", "GBP")
ERASURES_PER_BATCH = (5, 15)  # users asking to be forgotten, in weekly batches from the middle of the window
ERASURE_EVERY_DAYS = 7


@dataclass
class Population:
    """One entry per user, by position: attributes, active days, erasure time and behaviour rates."""

    ids: pl.Series  # u0000001, ...
    signup_us: np.ndarray
    is_new: np.ndarray
    first_day: np.ndarray  # first day the user may act: their profile lands that day
    last_day: np.ndarray  # last day the user may act: the window's end, or the eve of their erasure request
    erasure_us: np.ndarray  # -1: never asks
    country: np.ndarray
    plan: np.ndarray
    birth_year: np.ndarray
    consent_personalization: np.ndarray
    consent_marketing: np.ndarray
    currency: np.ndarray
    rates: dict[str, np.ndarray]  # propensities and amount scales

    @property
    def n(self) -> int:
        return len(self.signup_us)


def draw_population(spec: Spec) -> Population:
    """Draw every user: signup, country, plan, age, consents, currency, propensities and erasure requests."""
    rng = spec.rng("users")
    n = spec.users
    is_new = rng.random(n) < NEW_USER_SHARE
    tenure_us = (MAX_TENURE_DAYS * rng.random(n) ** 1.5 * DAY_US).astype(np.int64) + 1  # skews recent: a growing app
    signup_day = rng.integers(0, spec.days, n)
    country = rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS)
    age = np.clip(18 + rng.gamma(2.2, 9.0, n), 18, 85).astype(np.int16)
    pop = Population(
        ids=("u" + pl.int_range(1, n + 1, eager=True).cast(pl.String).str.zfill(7)).alias("user_id"),
        signup_us=np.where(
            is_new, spec.day_start(0) + signup_day * DAY_US + time_of_day(rng, n), spec.start_us - tenure_us
        ),
        is_new=is_new,
        first_day=np.where(is_new, signup_day, 0).astype(np.int32),
        last_day=np.full(n, spec.days - 1, dtype=np.int32),
        erasure_us=np.full(n, -1, dtype=np.int64),
        country=country,
        plan=rng.choice(len(PLANS), n, p=PLAN_WEIGHTS),
        birth_year=(spec.start.year - age).astype(np.int16),
        consent_personalization=rng.random(n) < CONSENT_PERSONALIZATION_SHARE,
        consent_marketing=rng.random(n) < CONSENT_MARKETING_SHARE,
        currency=_currencies(rng, country),
        rates=_propensities(rng, n),
    )
    _plan_erasures(spec, pop)
    return pop


def _currencies(rng: np.random.Generator, country: np.ndarray) -> np.ndarray:
    """One currency per user: GBP for most in GB, EUR for most elsewhere."""
    draw = rng.random(len(country))
    eur, usd, gbp = range(3)
    elsewhere = np.where(draw < 0.92, eur, np.where(draw < 0.97, usd, gbp))
    return np.where(country == COUNTRIES.index("GB"), np.where(draw < 0.90, gbp, eur), elsewhere).astype(np.int8)


def _propensities(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Per-user behaviour. Mixtures of a keen group and the rest give segments of distinct sizes."""
    saver, card_user, searcher, budgeter, salaried = rng.random((5, n)) < [[0.30], [0.35], [0.30], [0.25], [0.60]]
    return {
        "p_active": rng.beta(1.3, 2.0, n),
        "lam_sessions": rng.gamma(2.0, 0.4, n),
        "p_app": rng.beta(3.0, 1.5, n),
        "p_ios": rng.beta(2.0, 2.0, n),
        "lam_views": rng.gamma(3.0, 1.0, n),
        "lam_search": np.where(searcher, rng.gamma(2.0, 0.35, n), 0.003),
        "lam_savings_goal": rng.gamma(1.0, 0.08, n),
        "lam_card_controls": rng.gamma(1.0, 0.04, n),
        # day probabilities of the behaviours goals measure (capped in plant_effects)
        "budget_tool": np.where(budgeter, rng.beta(2.0, 8.0, n), 0.004),
        # A keen group well above the segment thresholds and the rest well below: few users sit near
        # a threshold, where the campaign's own lift would decide who enters the audience.
        "deposit": np.where(saver, 0.15 + 0.35 * rng.beta(2.0, 5.0, n), rng.beta(1.0, 500.0, n)),
        "card_payment": np.where(card_user, 0.12 + 0.5 * rng.beta(2.0, 5.0, n), rng.beta(1.0, 500.0, n)),
        "transfer_in": np.where(salaried, 0.0, rng.beta(1.0, 49.0, n)),  # salaries come on payday instead
        "transfer_out": rng.beta(1.0, 15.0, n),
        "payday": np.where(salaried, rng.choice([1, 15, 25, 28], n), 0),  # day of month
        "income": rng.lognormal(np.log(2000.0), 0.5, n),
        "scale_deposit": rng.lognormal(np.log(120.0), 0.8, n),
        "scale_card_payment": rng.lognormal(np.log(30.0), 0.6, n),
        "scale_transfer_in": rng.lognormal(np.log(150.0), 0.8, n),
        "scale_transfer_out": rng.lognormal(np.log(150.0), 0.9, n),
    }


def _plan_erasures(spec: Spec, pop: Population) -> None:
    """A batch of users asks to be forgotten once a week from mid-window (a privacy desk forwarding
    requests weekly); they act no more from that day. Each batch makes the pipeline rewrite the
    history that mentions them, so daily batches would make the demo measure mostly that."""
    rng = spec.rng("erasures")
    for day in range(spec.days // 2, spec.days, ERASURE_EVERY_DAYS):
        candidates = np.flatnonzero((pop.first_day < day) & (pop.erasure_us < 0))
        k = min(len(candidates), int(rng.integers(ERASURES_PER_BATCH[0], ERASURES_PER_BATCH[1] + 1)))
        chosen = np.sort(rng.choice(candidates, k, replace=False))
        pop.erasure_us[chosen] = spec.day_start(day) + time_of_day(rng, k)
        pop.last_day[chosen] = day - 1


def eligible(pop: Population, day: int) -> np.ndarray:
    """Users who may act on `day`: signed up, not (yet) gone."""
    return np.flatnonzero((pop.first_day <= day) & (day <= pop.last_day))


def earliest(pop: Population, who: np.ndarray, day_start: int) -> np.ndarray:
    """Microsecond of the day from which each user may act: after their signup."""
    return np.clip(pop.signup_us[who] - day_start + 1, 0, DAY_US - 1)
