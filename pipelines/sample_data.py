"""Seeded, vectorized sample landing data for Acme Savings, with planted effects and planted defects.

`generate_sample` writes what the four feeds would deliver (docs/contracts.md, "Landing files") for a
window of landing days, plus two answer keys under `_truth/`:

- `planted_truth.json`: the relative effect planted for each campaign on its goal's metric;
- `defect_plan.json`: the exact number of rows carrying each planted defect, per landing day.

Two phases, timed apart. Generating draws every row, effect and defect as numpy arrays (loops run
over days, sources and campaigns, never over rows). Writing renders those arrays as text (ids, ISO
timestamps, JSON) with polars and writes the files. Every draw comes from a stream keyed by
(seed, purpose[, day]), so the same arguments write the same bytes.

How an effect is planted: a goal's metric is a per-user-day indicator ("at least one completed
deposit that UTC day"). For user i it is drawn as Bernoulli(p_i) in the campaign's holdout arm and
Bernoulli(p_i * (1 + effect)) in its treatment arm, p_i capped so the product stays below 1.
Everything that later removes or moves a row (non-completed status, defects, late arrival) is drawn
without looking at the arm, so it thins both arms by the same factor and the expected ratio of the
two rates stays exactly 1 + effect.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import polars as pl

from assets.campaigns import holdout_mask
from assets.lake import connect
from assets.pyramid_map import Goal, PyramidMap, load_map

# --- planted truth -----------------------------------------------------------------------------

# Relative effect of a campaign's treatment arm on its goal's metric; override with `effects=`.
PLANTED_EFFECTS: dict[str, float] = {"savings_nudge": 0.25, "card_cashback": 0.15, "budget_tips": 0.0}

# The generated behaviour each goal metric counts; each is a per-user-day "at least one" indicator.
METRIC_BEHAVIOURS: dict[str, str] = {
    "deposit_rate": "deposit",  # >= 1 completed deposit that UTC day
    "card_spend_rate": "card_payment",  # >= 1 completed card payment that UTC day
    "budget_tool_rate": "budget_tool",  # >= 1 feature_use with properties.feature = budget_tool
}

# Base day probabilities are capped so that p * (1 + effect) stays at or below this (no clipping).
MAX_TREATED_PROBABILITY = 0.95

# --- planted defects: share of a source's clean rows given each one (one defect per row) --------

EVENT_DEFECT_RATES: dict[str, float] = {
    "duplicate": 0.005,  # an exact copy delivered again, the same landing day or 1-5 days later
    "late": 0.01,  # lands 1-3 days after the day it occurred
    "mixed_offset": 0.01,  # the same instant written with a non-UTC offset (valid)
    "null_user_id": 0.001,
    "null_id": 0.001,  # event_id missing
    "unparseable_timestamp": 0.001,
    "future_timestamp": 0.001,  # occurred_at 2-30 days after the landing day
    "orphan_user": 0.001,  # a user id that no profile ever carries
    "unknown_event_type": 0.001,
}
TRANSACTION_DEFECT_RATES: dict[str, float] = {
    "duplicate": 0.005,
    "late": 0.01,
    "mixed_offset": 0.01,
    "null_user_id": 0.002,
    "null_id": 0.002,  # txn_id missing
    "unparseable_timestamp": 0.002,
    "future_timestamp": 0.002,
    "orphan_user": 0.002,
    "negative_amount": 0.003,
    "absurd_amount": 0.002,  # above 1,000,000
    "unknown_currency": 0.003,
}
# Shares of the profile *update* rows: a user's first profile is always clean, so no user goes missing.
PROFILE_DEFECT_RATES: dict[str, float] = {
    "contradictory_update": 0.05,  # a second row: same user and updated_at, another plan
    "bad_birth_year": 0.02,  # birth_year is not a number
}
QUARANTINE_REASONS: dict[str, str | None] = {  # docs/contracts.md reason codes; None: not refused
    "duplicate": None,
    "late": None,
    "mixed_offset": None,
    "contradictory_update": None,
    "null_user_id": "missing_user_id",
    "null_id": "missing_key",
    "unparseable_timestamp": "bad_timestamp",
    "future_timestamp": "future_timestamp",
    "orphan_user": "orphan_user",
    "unknown_event_type": "unknown_event_type",
    "negative_amount": "non_positive_amount",
    "absurd_amount": "absurd_amount",
    "unknown_currency": "unknown_currency",
    "bad_birth_year": "bad_birth_year",
}
EXPECTED_HANDLING: dict[str, str] = {
    "duplicate": "removed by deduplication on the id; the first delivery is kept",
    "late": "accepted; counts for its activity day from its landing day on",
    "mixed_offset": "accepted; converted to UTC it is the instant the clean row would have had",
    "contradictory_update": "accepted; one of the two rows wins by a deterministic tie-break",
}
LATE_DAYS = (1, 3)
DUPLICATE_DELAY_DAYS = (0, 5)
FUTURE_DAYS = (2, 30)
BAD_TIMESTAMPS = ("not-a-date", "2026-13-45T99:00", "N/A", "32/10/2026 25:61")
MIXED_OFFSETS = ("+02:00", "-05:00", "+05:30", "-03:00", "+01:00")
UNKNOWN_EVENT_TYPES = ("app_crash", "pageview", "tap")
UNKNOWN_CURRENCIES = ("XXX", "EURO", "BTC")
BAD_BIRTH_YEARS = ("n/a", "19x5", "unknown")
ORPHAN_USER_IDS = tuple(f"x{9_999_999 - 7919 * k:07d}" for k in range(40))
ABSURD_AMOUNTS = (1_000_001.0, 50_000_000.0)

# --- population and behaviour ------------------------------------------------------------------

NEW_USER_SHARE = 0.10  # sign up inside the window; the others up to two years before it
MAX_TENURE_DAYS = 730
COUNTRIES = ("DE", "FR", "NL", "ES", "GB", "IE")
COUNTRY_WEIGHTS = (0.30, 0.20, 0.12, 0.15, 0.15, 0.08)
PLANS = ("basic", "plus", "premium")
PLAN_WEIGHTS = (0.60, 0.28, 0.12)
CONSENT_PERSONALIZATION_SHARE = 0.85
CONSENT_MARKETING_SHARE = 0.60
CURRENCIES = ("EUR", "USD", "GBP")
PROFILE_UPDATE_RATE = 0.002  # per known user and day
PROFILE_UPDATE_KINDS = (0.5, 0.3, 0.2)  # plan change, consent_personalization flip, consent_marketing flip
ERASURES_PER_BATCH = (5, 15)  # users asking to be forgotten, in weekly batches from the middle of the window
ERASURE_EVERY_DAYS = 7

EVENT_TYPES = (
    "session_start", "page_view", "screen_view", "search", "feature_use",
    "impression", "click", "conversion", "unsubscribe",
)
TXN_TYPES = ("deposit", "card_payment", "transfer_in", "transfer_out")
STATUSES = ("completed", "pending", "failed")
NON_COMPLETED_WEIGHTS = (0.6, 0.4)  # pending, failed
MERCHANT_CATEGORIES = (
    "groceries", "restaurants", "transport", "travel", "entertainment", "utilities", "shopping", "health",
)
MERCHANT_WEIGHTS = (0.30, 0.18, 0.14, 0.05, 0.08, 0.07, 0.13, 0.05)
PAGES = ("home", "savings", "cards", "transfers", "budget", "offers", "settings", "help")
PAGE_WEIGHTS = (0.35, 0.15, 0.15, 0.12, 0.08, 0.06, 0.05, 0.04)
SEARCH_QUERIES = (
    "interest rate", "savings goal", "card limit", "budget", "transfer abroad",
    "cashback", "round ups", "freeze card", "statement", "recurring deposit",
)
FEATURES = ("budget_tool", "savings_goal", "card_controls")
DEVICES = ("ios", "android", "desktop", "mobile_web")  # app sessions: the first two

P_IMPRESSION = 0.30  # per active day of a treatment user, per campaign
P_CLICK = 0.10  # per impression
P_CONVERSION = 0.30  # per click
UNSUBSCRIBE_RATE = 0.0005  # per user-day and campaign, both arms alike
NON_COMPLETED_RATIO = 0.06  # pending/failed rows per user-day, relative to the base day probability
EXTRA_TXNS = {"deposit": 0.2, "card_payment": 0.5, "transfer_in": 0.0, "transfer_out": 0.1}  # Poisson, on a day with one
EXTRA_BUDGET_TOOL_USES = 0.3
SECONDARY_STYLE_SHARE = 0.10  # rows written in the source's second timestamp style
EVENT_TIME_STYLES = ("%Y-%m-%dT%H:%M:%S%.6fZ", "%Y-%m-%dT%H:%M:%S+00:00")
TXN_TIME_STYLES = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%.6f+00:00")
PROFILE_TIME_STYLE = "%Y-%m-%dT%H:%M:%SZ"
_HOURLY_ACTIVITY = np.array([
    1.0, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.5, 3.5, 3.2, 3.3,
    4.0, 3.8, 3.4, 3.3, 3.5, 4.0, 4.5, 5.0, 5.0, 4.5, 3.5, 2.0,
])
HOUR_WEIGHTS = _HOURLY_ACTIVITY / _HOURLY_ACTIVITY.sum()

DAY_US = 86_400_000_000
SOURCES = ("events", "profiles", "transactions", "erasure_requests")
PROFILE_COLUMNS = (
    "user_id", "updated_at", "signup_at", "country", "birth_year", "plan",
    "consent_personalization", "consent_marketing", "email", "phone", "full_name",
)
TRANSACTION_COLUMNS = ("txn_id", "user_id", "occurred_at", "amount", "currency", "txn_type", "merchant_category", "status")
ERASURE_COLUMNS = ("user_id", "requested_at")

# Each purpose draws from its own stream, so a change in one place leaves the others' numbers alone.
_STREAMS = {"users": 1, "erasures": 2, "events": 3, "transactions": 4, "profiles": 5, "defects": 6, "pii": 7}
_ST_SECONDARY, _ST_MIXED = 1, 2  # timestamp style codes: 0 main, 1 second style, then offsets, then bad texts
_ST_BAD = _ST_MIXED + len(MIXED_OFFSETS)


@dataclass
class GenerationSummary:
    landing: Path
    seed: int
    users: int
    days: int
    start: date
    rows: dict[str, int]  # per source, over all landing days
    rows_by_day: dict[str, dict[str, int]]  # per source and landing day (ISO date)
    generate_seconds: float  # drawing every row as arrays
    write_seconds: float  # rendering text and writing files (render_seconds included)
    render_seconds: float
    files: list[Path] = field(default_factory=list)
    truth_path: Path | None = None
    defect_plan_path: Path | None = None

    @property
    def events(self) -> int:
        return self.rows["events"]


def generate_sample(
    landing: Path,
    *,
    users: int = 20_000,
    days: int = 30,
    start: date | None = None,
    seed: int = 7,
    pyramid_map: PyramidMap | None = None,
    progress: Callable[[str], None] | None = None,
    effects: Mapping[str, float] | None = None,
) -> GenerationSummary:
    """Replace the sample in `landing/` (the data/landing folder) with a fresh one; say what was written.

    `effects` overrides PLANTED_EFFECTS by campaign id; a campaign of the map without one gets 0.
    """
    if not 1 <= users <= 9_999_999 or days < 1:
        raise ValueError(f"need 1 <= users <= 9,999,999 (seven-digit ids) and days >= 1, got {users}, {days}")
    say = progress or (lambda _message: None)
    pyramid_map = pyramid_map or load_map()
    spec = _Spec(pyramid_map, seed, users, days, start or pyramid_map.start_date, _campaign_effects(pyramid_map, effects))
    landing = Path(landing)

    clock = time.perf_counter()
    sample = _generate(spec, say)
    generate_seconds = time.perf_counter() - clock
    clock = time.perf_counter()
    writer = _write(spec, landing, sample, say)
    write_seconds = time.perf_counter() - clock
    summary = GenerationSummary(
        landing=landing, seed=seed, users=users, days=days, start=spec.start,
        rows={source: sum(writer.rows_by_day[source].values()) for source in SOURCES},
        rows_by_day=writer.rows_by_day, generate_seconds=generate_seconds, write_seconds=write_seconds,
        render_seconds=writer.render_seconds, files=writer.files,
        truth_path=landing / "_truth" / "planted_truth.json", defect_plan_path=landing / "_truth" / "defect_plan.json",
    )
    say(f"done: {summary.rows['events']:,} events, {summary.rows['transactions']:,} transactions; "
        f"{generate_seconds:.2f}s generating, {write_seconds:.2f}s writing")
    return summary


@dataclass
class _Sample:
    """Everything drawn, as arrays; rows of each source ordered by landing day."""

    pop: _Population
    arms: dict[str, np.ndarray]
    events: dict[str, np.ndarray]
    sessions: int
    transactions: dict[str, np.ndarray]
    profiles: dict[str, np.ndarray]
    defect_plan: dict


def _generate(spec: _Spec, say: Callable[[str], None]) -> _Sample:
    say(f"generating {spec.users:,} users over {spec.days} days from {spec.start} (seed {spec.seed})")
    pop = _population(spec)
    arms = _treatment_arms(spec, pop)
    _plant_effects(spec, pop, arms)
    events, sessions = _generate_events(spec, pop, arms, say)
    txns = _generate_transactions(spec, pop)
    profiles = _generate_profiles(spec, pop)
    say(f"planting defects in {len(events['t']):,} events and {len(txns['t']):,} transactions")
    plan = {
        "events": _plant_row_defects(spec, pop, events, EVENT_DEFECT_RATES, "events"),
        "transactions": _plant_row_defects(spec, pop, txns, TRANSACTION_DEFECT_RATES, "transactions"),
        "profiles": _plant_profile_defects(spec, profiles, first_profiles=pop.n),
    }
    return _Sample(pop, arms, events, sessions, txns, profiles, plan)


def _write(spec: _Spec, landing: Path, sample: _Sample, say: Callable[[str], None]) -> "_Writer":
    say(f"writing landing files into {landing}")
    _clear_previous_sample(landing)
    pop = sample.pop
    writer = _Writer(spec, landing)
    writer.write("events", sample.events, _EventRenderer(spec, pop, sample.sessions))
    writer.write("transactions", sample.transactions, _TransactionRenderer(pop))
    writer.write("profiles", sample.profiles, _ProfileRenderer(spec, pop))
    writer.write("erasure_requests", _erasure_rows(spec, pop), _ErasureRenderer(pop))
    _write_json(landing / "_truth" / "planted_truth.json", _planted_truth(spec, pop, sample.arms))
    _write_json(landing / "_truth" / "defect_plan.json", _defect_plan(spec, sample.defect_plan))
    return writer


# --- parameters --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    map: PyramidMap
    seed: int
    users: int
    days: int
    start: date
    effects: dict[str, float]

    def rng(self, purpose: str, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, _STREAMS[purpose], *keys])

    @property
    def start_us(self) -> int:
        return int(datetime(self.start.year, self.start.month, self.start.day, tzinfo=timezone.utc).timestamp()) * 1_000_000

    def day_start(self, day: int) -> int:
        return self.start_us + day * DAY_US

    def ds(self, day: int) -> str:
        return (self.start + timedelta(days=day)).isoformat()


def _campaign_effects(pyramid_map: PyramidMap, overrides: Mapping[str, float] | None) -> dict[str, float]:
    campaign_ids = [c.id for c in pyramid_map.campaigns]
    unknown = sorted(set(overrides or {}) - set(campaign_ids))
    if unknown:
        raise ValueError(f"effects name unknown campaigns {unknown}; the map has {campaign_ids}")
    effects = {cid: float(PLANTED_EFFECTS.get(cid, 0.0)) for cid in campaign_ids}
    effects.update({cid: float(v) for cid, v in (overrides or {}).items()})
    goals = _goals_by_campaign(pyramid_map)
    for cid, effect in effects.items():
        if effect <= -1:
            raise ValueError(f"the effect of {cid!r} is a relative change and must be above -1, got {effect}")
        if effect and cid not in goals:
            raise ValueError(f"campaign {cid!r} has no goal in the map, so no effect ({effect}) can be planted")
    return effects


def _goals_by_campaign(pyramid_map: PyramidMap) -> dict[str, Goal]:
    goals: dict[str, Goal] = {}
    for goal in pyramid_map.goals:
        if goal.metric not in METRIC_BEHAVIOURS:
            raise ValueError(
                f"goal {goal.id!r} measures {goal.metric!r}, a metric the sample generator cannot plant an effect on; "
                f"it knows {', '.join(sorted(METRIC_BEHAVIOURS))} (METRIC_BEHAVIOURS in {__name__})"
            )
        if goal.campaign in goals:
            raise ValueError(f"campaign {goal.campaign!r} serves two goals; the sample plants one effect per campaign")
        goals[goal.campaign] = goal
    return goals


# --- population: who, since when, how they behave, which arm ----------------------------------


@dataclass
class _Population:
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


def _population(spec: _Spec) -> _Population:
    rng = spec.rng("users")
    n = spec.users
    is_new = rng.random(n) < NEW_USER_SHARE
    tenure_us = (MAX_TENURE_DAYS * rng.random(n) ** 1.5 * DAY_US).astype(np.int64) + 1  # skews recent: a growing app
    signup_day = rng.integers(0, spec.days, n)
    country = rng.choice(len(COUNTRIES), n, p=COUNTRY_WEIGHTS)
    age = np.clip(18 + rng.gamma(2.2, 9.0, n), 18, 85).astype(np.int16)
    pop = _Population(
        ids=("u" + pl.int_range(1, n + 1, eager=True).cast(pl.String).str.zfill(7)).alias("user_id"),
        signup_us=np.where(is_new, spec.day_start(0) + signup_day * DAY_US + _time_of_day(rng, n), spec.start_us - tenure_us),
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
    saver, card_user, searcher, budgeter, salaried = (rng.random((5, n)) < [[0.30], [0.35], [0.30], [0.25], [0.60]])
    return {
        "p_active": rng.beta(1.3, 2.0, n),
        "lam_sessions": rng.gamma(2.0, 0.4, n),
        "p_app": rng.beta(3.0, 1.5, n),
        "p_ios": rng.beta(2.0, 2.0, n),
        "lam_views": rng.gamma(3.0, 1.0, n),
        "lam_search": np.where(searcher, rng.gamma(2.0, 0.35, n), 0.003),
        "lam_savings_goal": rng.gamma(1.0, 0.08, n),
        "lam_card_controls": rng.gamma(1.0, 0.04, n),
        # day probabilities of the behaviours goals measure (capped in _plant_effects)
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


def _plan_erasures(spec: _Spec, pop: _Population) -> None:
    """A batch of users asks to be forgotten once a week from mid-window (a privacy desk forwarding
    requests weekly); they act no more from that day. Each batch makes the pipeline rewrite the
    history that mentions them, so daily batches would make the demo measure mostly that."""
    rng = spec.rng("erasures")
    for day in range(spec.days // 2, spec.days, ERASURE_EVERY_DAYS):
        candidates = np.flatnonzero((pop.first_day < day) & (pop.erasure_us < 0))
        k = min(len(candidates), int(rng.integers(ERASURES_PER_BATCH[0], ERASURES_PER_BATCH[1] + 1)))
        chosen = np.sort(rng.choice(candidates, k, replace=False))
        pop.erasure_us[chosen] = spec.day_start(day) + _time_of_day(rng, k)
        pop.last_day[chosen] = day - 1


def _treatment_arms(spec: _Spec, pop: _Population) -> dict[str, np.ndarray]:
    """Per campaign, True where the user is in the treatment arm (assets.campaigns.holdout_mask)."""
    con = connect()
    try:
        user_ids = pop.ids.to_arrow()
        return {
            c.id: ~holdout_mask(con, user_ids, c.id, c.holdout).to_numpy(zero_copy_only=False).astype(bool)
            for c in spec.map.campaigns
        }
    finally:
        con.close()


def _plant_effects(spec: _Spec, pop: _Population, arms: dict[str, np.ndarray]) -> None:
    """Cap each planted behaviour's base day probability; store `<behaviour>_treated` = p * (1 + effect) by arm."""
    multipliers = {b: np.ones(pop.n) for b in METRIC_BEHAVIOURS.values()}
    largest = dict.fromkeys(multipliers, 1.0)
    for campaign_id, goal in _goals_by_campaign(spec.map).items():
        behaviour, effect = METRIC_BEHAVIOURS[goal.metric], spec.effects[campaign_id]
        multipliers[behaviour] *= np.where(arms[campaign_id], 1.0 + effect, 1.0)
        largest[behaviour] *= max(1.0, 1.0 + effect)
    for behaviour, multiplier in multipliers.items():
        pop.rates[behaviour] = np.minimum(pop.rates[behaviour], MAX_TREATED_PROBABILITY / largest[behaviour])
        pop.rates[f"{behaviour}_treated"] = pop.rates[behaviour] * multiplier


def _eligible(pop: _Population, day: int) -> np.ndarray:
    """Users who may act on `day`: signed up, not (yet) gone."""
    return np.flatnonzero((pop.first_day <= day) & (day <= pop.last_day))


def _earliest(pop: _Population, who: np.ndarray, day_start: int) -> np.ndarray:
    """Microsecond of the day from which each user may act: after their signup."""
    return np.clip(pop.signup_us[who] - day_start + 1, 0, DAY_US - 1)


# --- events ------------------------------------------------------------------------------------


class _Vocab:
    """Codes of the categorical event columns, and the one code of their combination (`tail`)."""

    def __init__(self, pyramid_map: PyramidMap):
        self.campaigns = [c.id for c in pyramid_map.campaigns]
        self.touchpoints = [t.id for t in pyramid_map.touchpoints]
        self.channels = list(dict.fromkeys(["app", "web", *(t.channel for t in pyramid_map.touchpoints)]))
        self.touchpoint_channel = np.array([self.channels.index(t.channel) for t in pyramid_map.touchpoints])
        self.campaign_touchpoints = [
            np.array([self.touchpoints.index(tp) for tp in c.touchpoints]) for c in pyramid_map.campaigns
        ]
        self.properties = [
            *(("device", d) for d in DEVICES),
            *(("page", p) for p in PAGES),
            *(("screen", p) for p in PAGES),
            *(("query", q) for q in SEARCH_QUERIES),
            *(("feature", f) for f in FEATURES),
        ]

    def prop(self, key: str, value: str) -> int:
        return self.properties.index((key, value))

    def sizes(self) -> tuple[int, int, int, int]:
        """Number of codes per tail part; campaign, touchpoint and property have a 'none' code 0."""
        return len(self.channels), len(self.campaigns) + 1, len(self.touchpoints) + 1, len(self.properties) + 1

    def tail(self, channel, campaign, touchpoint, prop) -> np.ndarray:
        _, n_campaign, n_touchpoint, n_prop = self.sizes()
        code = np.asarray(channel, dtype=np.int32)
        for part, size in ((campaign, n_campaign), (touchpoint, n_touchpoint), (prop, n_prop)):
            code = code * size + np.asarray(part, dtype=np.int32) + 1  # -1 (none) becomes 0
        return code.astype(np.int16 if np.prod(self.sizes()) < 2**15 else np.int32)


def _generate_events(spec: _Spec, pop: _Population, arms: dict[str, np.ndarray], say: Callable) -> tuple[dict, int]:
    """The clean events of every activity day, in arrival order; and how many sessions were drawn."""
    vocab = _Vocab(spec.map)
    treatment = [arms[c] for c in vocab.campaigns]
    parts, session_base = [], 0
    for day in range(spec.days):
        day_parts, sessions = _day_events(spec, pop, vocab, treatment, day, session_base)
        parts += day_parts
        session_base += sessions
        if (day + 1) % 10 == 0 or day + 1 == spec.days:
            say(f"  events: {day + 1}/{spec.days} days drawn")
    return _in_arrival_order(_concat(parts)), session_base


def _day_events(spec: _Spec, pop: _Population, vocab: _Vocab, treatment: list, day: int, session_base: int):
    rng, rates = spec.rng("events", day), pop.rates
    day_start = spec.day_start(day)
    users = _eligible(pop, day)
    budget_day = rng.random(len(users)) < rates["budget_tool_treated"][users]
    active = (rng.random(len(users)) < rates["p_active"][users]) | budget_day  # using a tool means a visit
    actors, budget_day = users[active], budget_day[active]
    sessions = _Sessions.draw(rng, rates, actors, _earliest(pop, actors, day_start), session_base)
    query = np.array([vocab.prop("query", q) for q in SEARCH_QUERIES])
    parts = [
        sessions.starts(rng, rates, vocab),
        sessions.views(rng, rates, vocab),
        sessions.actions(rng, rng.poisson(rates["lam_search"][actors]), "search", vocab, query),
        sessions.actions(rng, budget_day * (1 + rng.poisson(EXTRA_BUDGET_TOOL_USES, len(actors))), "feature_use",
                         vocab, vocab.prop("feature", "budget_tool")),
        sessions.actions(rng, rng.poisson(rates["lam_savings_goal"][actors]), "feature_use", vocab,
                         vocab.prop("feature", "savings_goal")),
        sessions.actions(rng, rng.poisson(rates["lam_card_controls"][actors]), "feature_use", vocab,
                         vocab.prop("feature", "card_controls")),
    ]
    for ci, in_treatment in enumerate(treatment):
        parts += _campaign_events(rng, vocab, sessions, ci, in_treatment[actors])
        parts.append(_unsubscribes(rng, vocab, ci, users, _earliest(pop, users, day_start)))
    for part in parts:
        part["t"] += day_start
        part["day"] = np.full(len(part["t"]), day, dtype=np.uint16)
    return parts, sessions.count


@dataclass
class _Sessions:
    """One day's sessions: whose, when, how long, app or web. Other events are placed inside them."""

    actors: np.ndarray
    first: np.ndarray  # each actor's first session
    per_actor: np.ndarray
    user: np.ndarray
    start: np.ndarray  # microseconds into the day
    duration: np.ndarray
    app: np.ndarray
    ids: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, rates: dict, actors: np.ndarray, earliest: np.ndarray, session_base: int):
        per_actor = 1 + rng.poisson(rates["lam_sessions"][actors])
        owner = np.repeat(np.arange(len(actors)), per_actor)
        count = len(owner)
        return cls(
            actors=actors, first=np.cumsum(per_actor) - per_actor, per_actor=per_actor, user=actors[owner],
            start=_time_of_day(rng, count, earliest[owner]),
            duration=(rng.exponential(240e6, count) + 30e6).astype(np.int64),
            app=rng.random(count) < rates["p_app"][actors[owner]],
            ids=(session_base + np.arange(count)).astype(np.int32),
        )

    @property
    def count(self) -> int:
        return len(self.user)

    def pick(self, rng: np.random.Generator, actor_positions: np.ndarray) -> np.ndarray:
        """A random session of each given actor."""
        return self.first[actor_positions] + (rng.random(len(actor_positions)) * self.per_actor[actor_positions]).astype(np.int64)

    def time_in(self, rng: np.random.Generator, session: np.ndarray) -> np.ndarray:
        offset = (rng.random(len(session)) * self.duration[session]).astype(np.int64) + 1
        return np.minimum(self.start[session] + offset, DAY_US - 1)

    def starts(self, rng, rates, vocab: _Vocab) -> dict:
        first_kind = rng.random(self.count) < np.where(self.app, rates["p_ios"][self.user], 0.7)
        device = vocab.prop("device", DEVICES[0]) + np.where(self.app, 0, 2) + ~first_kind  # ios android desktop mobile_web
        return _event_rows(vocab, self.user, "session_start", self.start, self.ids, 1 - self.app, prop=device)

    def views(self, rng, rates, vocab: _Vocab) -> dict:
        per_session = 1 + rng.poisson(rates["lam_views"][self.user])
        session = np.repeat(np.arange(self.count), per_session)
        app = self.app[session]
        page = rng.choice(len(PAGES), len(session), p=PAGE_WEIGHTS)
        prop = np.where(app, vocab.prop("screen", PAGES[0]), vocab.prop("page", PAGES[0])) + page
        event_type = np.where(app, EVENT_TYPES.index("screen_view"), EVENT_TYPES.index("page_view"))
        return _event_rows(vocab, self.user[session], event_type, self.time_in(rng, session), self.ids[session], 1 - app, prop=prop)

    def actions(self, rng, per_actor: np.ndarray, event_type: str, vocab: _Vocab, props: np.ndarray | int) -> dict:
        """`per_actor[i]` events of one type for actor i, each in a random session of theirs."""
        session = self.pick(rng, np.repeat(np.arange(len(self.actors)), per_actor))
        if isinstance(props, np.ndarray):
            props = props[rng.integers(0, len(props), len(session))]
        return _event_rows(vocab, self.user[session], event_type, self.time_in(rng, session), self.ids[session],
                           1 - self.app[session], prop=props)


def _campaign_events(rng: np.random.Generator, vocab: _Vocab, sessions: _Sessions, ci: int, treated: np.ndarray) -> list[dict]:
    """Impressions on some active days of treatment users (never holdout), then clicks and conversions."""
    shown = np.flatnonzero(treated & (rng.random(len(treated)) < P_IMPRESSION))
    session = sessions.pick(rng, shown)
    touchpoints = vocab.campaign_touchpoints[ci]
    touchpoint = touchpoints[rng.integers(0, len(touchpoints), len(shown))]
    t = sessions.time_in(rng, session)
    rows = [_campaign_rows(vocab, sessions.user[session], "impression", t, ci, touchpoint)]
    for event_type, chance, mean_delay_us in (("click", P_CLICK, 45e6), ("conversion", P_CONVERSION, 180e6)):
        kept = rng.random(len(t)) < chance
        t = np.minimum(t[kept] + rng.exponential(mean_delay_us, kept.sum()).astype(np.int64) + 1, DAY_US - 1)
        session, touchpoint = session[kept], touchpoint[kept]
        rows.append(_campaign_rows(vocab, sessions.user[session], event_type, t, ci, touchpoint))
    return rows


def _unsubscribes(rng: np.random.Generator, vocab: _Vocab, ci: int, users: np.ndarray, earliest: np.ndarray) -> dict:
    """Drawn over every user who may act, whatever the arm: the guardrail has no planted effect."""
    hit = rng.random(len(users)) < UNSUBSCRIBE_RATE
    touchpoints = vocab.campaign_touchpoints[ci]
    touchpoint = touchpoints[rng.integers(0, len(touchpoints), hit.sum())]
    return _campaign_rows(vocab, users[hit], "unsubscribe", _time_of_day(rng, int(hit.sum()), earliest[hit]), ci, touchpoint)


def _campaign_rows(vocab: _Vocab, user, event_type: str, t, ci: int, touchpoint) -> dict:
    """Campaign events come from the messaging system: no session, the touchpoint's channel."""
    return _event_rows(vocab, user, event_type, t, -1, vocab.touchpoint_channel[touchpoint], campaign=ci, touchpoint=touchpoint)


def _event_rows(vocab: _Vocab, user, event_type, t, session, channel, *, campaign=-1, touchpoint=-1, prop=-1) -> dict:
    n = len(user)
    if isinstance(event_type, str):
        event_type = EVENT_TYPES.index(event_type)
    return {
        "user": np.asarray(user, dtype=np.int32),
        "etype": np.broadcast_to(np.asarray(event_type, dtype=np.int8), n).copy(),
        "t": np.asarray(t, dtype=np.int64).copy(),
        "session": np.broadcast_to(np.asarray(session, dtype=np.int32), n).copy(),
        "tail": np.broadcast_to(vocab.tail(channel, campaign, touchpoint, prop), n).copy(),
    }


# --- transactions ------------------------------------------------------------------------------


def _generate_transactions(spec: _Spec, pop: _Population) -> dict[str, np.ndarray]:
    parts = []
    for day in range(spec.days):
        rng = spec.rng("transactions", day)
        users, day_start = _eligible(pop, day), spec.day_start(day)
        day_parts = [_salaries(rng, pop, users, day_start, (spec.start + timedelta(days=day)).day)]
        day_parts += [_typed_transactions(rng, pop, users, day_start, txn_type) for txn_type in TXN_TYPES]
        for part in day_parts:
            part["day"] = np.full(len(part["t"]), day, dtype=np.uint16)
        parts += day_parts
    return _in_arrival_order(_concat(parts))


def _typed_transactions(rng: np.random.Generator, pop: _Population, users, day_start: int, txn_type: str) -> dict:
    """Completed rows on days drawn with the (treated) day probability; pending/failed rows beside them."""
    base = pop.rates[txn_type][users]
    has_day = rng.random(len(users)) < pop.rates.get(f"{txn_type}_treated", pop.rates[txn_type])[users]
    completed = np.repeat(users[has_day], 1 + rng.poisson(EXTRA_TXNS[txn_type], has_day.sum()))
    other = users[rng.random(len(users)) < base * NON_COMPLETED_RATIO]  # drawn on the base rate: arm-blind
    status = np.concatenate([np.zeros(len(completed), dtype=np.int8), 1 + rng.choice(2, len(other), p=NON_COMPLETED_WEIGHTS)])
    who = np.concatenate([completed, other])
    t = day_start + _time_of_day(rng, len(who), _earliest(pop, who, day_start))
    return _txn_rows(rng, pop, who, txn_type, t, status)


def _salaries(rng: np.random.Generator, pop: _Population, users, day_start: int, day_of_month: int) -> dict:
    paid = users[pop.rates["payday"][users] == day_of_month]
    t = day_start + _time_of_day(rng, len(paid), _earliest(pop, paid, day_start))
    return _txn_rows(rng, pop, paid, "transfer_in", t, np.zeros(len(paid)), scale=pop.rates["income"][paid], spread=0.05)


def _txn_rows(rng, pop: _Population, who, txn_type: str, t, status, *, scale=None, spread=0.6) -> dict:
    n = len(who)
    scale = pop.rates[f"scale_{txn_type}"][who] if scale is None else scale
    merchant = rng.choice(len(MERCHANT_CATEGORIES), n, p=MERCHANT_WEIGHTS) if txn_type == "card_payment" else np.full(n, -1)
    return {
        "user": who.astype(np.int32),
        "ttype": np.full(n, TXN_TYPES.index(txn_type), dtype=np.int8),
        "t": np.asarray(t, dtype=np.int64),
        "amount": np.round(scale * rng.lognormal(0.0, spread, n), 2).clip(0.01),
        "status": np.asarray(status, dtype=np.int8),
        "merchant": merchant.astype(np.int8),
        "currency": pop.currency[who],
    }


# --- profiles and erasure requests -------------------------------------------------------------


def _generate_profiles(spec: _Spec, pop: _Population) -> dict[str, np.ndarray]:
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
        rows.append(_profile_rows(who, np.full(len(who), day), spec.day_start(day) + _time_of_day(rng, len(who)), state))
    return _concat(rows)


def _profile_rows(who: np.ndarray, day: np.ndarray, updated_us: np.ndarray, state: dict) -> dict[str, np.ndarray]:
    n = len(who)
    return {
        "user": who.astype(np.int32), "land": np.asarray(day, dtype=np.int32), "updated": updated_us.astype(np.int64),
        "plan": state["plan"][who], "cp": state["cp"][who], "cm": state["cm"][who],
        "bad_year": np.full(n, -1, dtype=np.int8), "defect": np.zeros(n, dtype=np.int8),
    }


def _erasure_rows(spec: _Spec, pop: _Population) -> dict[str, np.ndarray]:
    who = np.flatnonzero(pop.erasure_us >= 0)
    who = who[np.argsort(pop.erasure_us[who], kind="stable")]
    return {"user": who, "land": (pop.erasure_us[who] - spec.start_us) // DAY_US}


# --- defects -----------------------------------------------------------------------------------


def _defect_codes(rng: np.random.Generator, n: int, rates: Mapping[str, float]) -> np.ndarray:
    """0 for a clean row, k for the k-th defect: disjoint sets of exactly round(rate * n) rows each."""
    counts = [round(rate * n) for rate in rates.values()]
    if sum(counts) > n:
        raise ValueError(f"defect rates add up to more than the {n} rows generated")
    codes = np.zeros(n, dtype=np.int8)
    codes[rng.choice(n, sum(counts), replace=False)] = np.repeat(np.arange(1, len(counts) + 1, dtype=np.int8), counts)
    return codes


def _plant_row_defects(spec: _Spec, pop: _Population, rows: dict, rates: Mapping[str, float], source: str) -> dict:
    """Plant one defect in each chosen row; add the duplicates; keep what lands in time; count it all."""
    rng = spec.rng("defects", SOURCES.index(source))
    names = list(rates)
    n = len(rows["t"])
    rows["defect"] = _defect_codes(rng, n, rates)
    rows["land"] = rows.pop("day").astype(np.int32)
    rows["seq"] = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)  # the id's number; -1: no id
    rows["style"] = (rng.random(n) < SECONDARY_STYLE_SHARE).astype(np.int8)

    def plant(name: str, column: str, values: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        rows_with = np.flatnonzero(rows["defect"] == names.index(name) + 1)
        rows[column][rows_with] = values(rows[column][rows_with])
        return rows_with

    def one_of(options: int, offset: int) -> Callable[[np.ndarray], np.ndarray]:
        return lambda current: offset + rng.integers(0, options, len(current))

    late = plant("late", "land", lambda land: land + rng.integers(LATE_DAYS[0], LATE_DAYS[1] + 1, len(land)))
    plant("mixed_offset", "style", one_of(len(MIXED_OFFSETS), _ST_MIXED))
    plant("unparseable_timestamp", "style", one_of(len(BAD_TIMESTAMPS), _ST_BAD))
    plant("future_timestamp", "t", lambda t: t + rng.integers(FUTURE_DAYS[0], FUTURE_DAYS[1] + 1, len(t)) * DAY_US)
    plant("orphan_user", "user", one_of(len(ORPHAN_USER_IDS), pop.n))
    plant("null_user_id", "user", one_of(1, pop.n + len(ORPHAN_USER_IDS)))  # the user columns' null code
    plant("null_id", "seq", lambda seq: np.full(len(seq), -1))
    if source == "events":
        plant("unknown_event_type", "etype", one_of(len(UNKNOWN_EVENT_TYPES), len(EVENT_TYPES)))
    else:
        plant("negative_amount", "amount", lambda amount: -amount)
        plant("absurd_amount", "amount", lambda amount: np.round(rng.uniform(*ABSURD_AMOUNTS, len(amount)), 2))
        plant("unknown_currency", "currency", one_of(len(UNKNOWN_CURRENCIES), len(CURRENCIES)))
    duplicated = np.flatnonzero(rows["defect"] == names.index("duplicate") + 1)
    extra = _add_duplicates(rng, rows, duplicated, names.index("duplicate") + 1)
    extra[late] = True
    _keep_what_lands_in_time(spec, pop, rows, extra)
    return _plan_counts(spec, names, rows["defect"], rows["land"], rates)


def _add_duplicates(rng: np.random.Generator, rows: dict, originals: np.ndarray, code: int) -> np.ndarray:
    """The chosen rows stay clean; an exact copy of each is appended, delivered 0-5 days later.

    Returns the mask of rows that arrive after the regular delivery of their landing day.
    """
    copies = {key: column[originals] for key, column in rows.items()}
    rows["defect"][originals] = 0
    copies["land"] = copies["land"] + rng.integers(DUPLICATE_DELAY_DAYS[0], DUPLICATE_DELAY_DAYS[1] + 1, len(originals))
    copies["defect"][:] = code
    extra = np.concatenate([np.zeros(len(rows["t"]), dtype=bool), np.ones(len(originals), dtype=bool)])
    for key in rows:
        rows[key] = np.concatenate([rows[key], copies[key]])
    return extra


def _keep_what_lands_in_time(spec: _Spec, pop: _Population, rows: dict, extra: np.ndarray) -> None:
    """Drop late rows and copies landing after the window, or once their user asked to be erased (so
    they are never orphans); order by landing day, the day's regular delivery first."""
    keep = rows["land"] < spec.days
    delayed = np.flatnonzero(extra & keep)
    user = rows["user"][delayed]  # real users only: one defect a row, so no orphan or null id here
    erased = pop.erasure_us[user] >= 0
    keep[delayed[erased]] = rows["land"][delayed[erased]] < (pop.erasure_us[user[erased]] - spec.start_us) // DAY_US
    kept = np.flatnonzero(keep)
    order = kept[np.argsort(rows["land"][kept] * 2 + extra[kept], kind="stable")]
    for key in rows:
        rows[key] = rows[key][order]


def _plant_profile_defects(spec: _Spec, profiles: dict, first_profiles: int) -> dict:
    """Among update rows: unreadable birth years, and contradictory twins (same user and time, other plan)."""
    rng = spec.rng("defects", SOURCES.index("profiles"))
    names = list(PROFILE_DEFECT_RATES)
    updates = np.arange(first_profiles, len(profiles["user"]))
    codes = _defect_codes(rng, len(updates), PROFILE_DEFECT_RATES)
    bad = updates[codes == names.index("bad_birth_year") + 1]
    profiles["bad_year"][bad] = rng.integers(0, len(BAD_BIRTH_YEARS), len(bad))
    profiles["defect"][bad] = names.index("bad_birth_year") + 1
    twins = {key: column[updates[codes == names.index("contradictory_update") + 1]] for key, column in profiles.items()}
    twins["plan"] = (twins["plan"] + rng.integers(1, len(PLANS), len(twins["plan"]))) % len(PLANS)
    twins["defect"][:] = names.index("contradictory_update") + 1
    for key in profiles:
        profiles[key] = np.concatenate([profiles[key], twins[key]])
    order = np.lexsort((profiles["user"], profiles["land"]))  # stable: a twin follows its original
    for key in profiles:
        profiles[key] = profiles[key][order]
    return _plan_counts(spec, names, profiles["defect"], profiles["land"], PROFILE_DEFECT_RATES)


def _plan_counts(spec: _Spec, names: list[str], codes: np.ndarray, land: np.ndarray, rates: Mapping[str, float]) -> dict:
    plan = {}
    for k, name in enumerate(names, start=1):
        by_day = np.bincount(land[codes == k], minlength=spec.days)
        plan[name] = {
            "count": int(by_day.sum()),
            "rate": rates[name],
            "quarantine_reason": QUARANTINE_REASONS[name],
            "expected_handling": EXPECTED_HANDLING.get(name, f"quarantined as {QUARANTINE_REASONS[name]}"),
            "by_landing_day": {spec.ds(d): int(c) for d, c in enumerate(by_day) if c},
        }
    return plan


# --- rendering and writing ---------------------------------------------------------------------


class _Writer:
    """Writes each source's rows day by day, timing the text rendering apart from the rest."""

    def __init__(self, spec: _Spec, landing: Path):
        self.spec, self.landing = spec, landing
        self.files: list[Path] = []
        self.rows_by_day: dict[str, dict[str, int]] = {}
        self.render_seconds = 0.0

    def write(self, source: str, rows: dict[str, np.ndarray], renderer) -> None:
        bounds = np.searchsorted(rows["land"], np.arange(self.spec.days + 1))
        self.rows_by_day[source] = {}
        for day in range(self.spec.days):
            part = {key: column[bounds[day]:bounds[day + 1]] for key, column in rows.items()}
            clock = time.perf_counter()
            frame = renderer.render(part)
            self.render_seconds += time.perf_counter() - clock
            path = self.landing / source / self.spec.ds(day) / f"{source}-0.{renderer.extension}"
            path.parent.mkdir(parents=True, exist_ok=True)
            renderer.write(frame, path)
            self.files.append(path)
            self.rows_by_day[source][self.spec.ds(day)] = frame.height


class _CsvRenderer:
    extension = "csv"
    columns: tuple[str, ...] = ()

    def write(self, frame: pl.DataFrame, path: Path) -> None:
        frame.select(self.columns).write_csv(path, float_precision=2)


class _EventRenderer:
    """Events as JSON text, one column per key, for a comma-joined unquoted write: one object a line.

    Each column holds `"key":value` fragments (the first opens the object, the last closes it). That is
    much faster than building lines, and unlike write_ndjson writes only the properties an event has (a
    struct column writes every key, null ones too). Categorical fragments are Enums: a row costs an
    integer, each distinct text exists once.
    """

    extension = "jsonl"

    def __init__(self, spec: _Spec, pop: _Population, sessions: int):
        vocab = _Vocab(spec.map)
        self.users = _user_fragments(pop)
        self.event_types = _fragments("event_type", EVENT_TYPES + UNKNOWN_EVENT_TYPES)
        self.sessions = ('"session_id":"s' + pl.int_range(0, sessions, eager=True).cast(pl.String) + '"').append(
            pl.Series(['"session_id":null']))
        self.tails = _tail_fragments(vocab)

    def render(self, rows: dict[str, np.ndarray]) -> pl.DataFrame:
        no_id = np.flatnonzero(rows["seq"] < 0)
        event_id = ('{"event_id":"e' + pl.Series(rows["seq"]).cast(pl.String) + '"').scatter(no_id, '{"event_id":null')
        return pl.DataFrame({
            "event_id": event_id,
            "user_id": self.users.gather(rows["user"]),
            "event_type": self.event_types.gather(rows["etype"]),
            "occurred_at": _timestamps(rows, EVENT_TIME_STYLES, key="occurred_at"),
            "session_id": self.sessions.gather(np.where(rows["session"] < 0, len(self.sessions) - 1, rows["session"])),
            "rest": self.tails.gather(rows["tail"]),  # channel, campaign_id, touchpoint_id, properties, closing brace
        })

    def write(self, frame: pl.DataFrame, path: Path) -> None:
        frame.write_csv(path, include_header=False, quote_style="never", separator=",")


class _TransactionRenderer(_CsvRenderer):
    columns = TRANSACTION_COLUMNS

    def __init__(self, pop: _Population):
        self.users = _user_column(pop)

    def render(self, rows: dict[str, np.ndarray]) -> pl.DataFrame:
        return pl.DataFrame({
            "txn_id": ("t" + pl.Series(rows["seq"]).cast(pl.String)).set(pl.Series(rows["seq"] < 0), None),
            "user_id": self.users.gather(rows["user"]),
            "occurred_at": _timestamps(rows, TXN_TIME_STYLES),
            "amount": rows["amount"],
            "currency": _enum(CURRENCIES + UNKNOWN_CURRENCIES, rows["currency"]),
            "txn_type": _enum(TXN_TYPES, rows["ttype"]),
            "merchant_category": _enum(MERCHANT_CATEGORIES, rows["merchant"]),
            "status": _enum(STATUSES, rows["status"]),
        })


class _ProfileRenderer(_CsvRenderer):
    columns = PROFILE_COLUMNS

    def __init__(self, spec: _Spec, pop: _Population):
        self.pop = pop
        self.pii = _pii(spec, pop)

    def render(self, rows: dict[str, np.ndarray]) -> pl.DataFrame:
        user, pop = rows["user"], self.pop
        bad = np.flatnonzero(rows["bad_year"] >= 0)
        unreadable = pl.Series(BAD_BIRTH_YEARS).gather(rows["bad_year"][bad])
        birth_year = pl.Series(pop.birth_year[user]).cast(pl.String).scatter(bad, unreadable)
        return pl.DataFrame({
            "user_id": pop.ids.gather(user),
            "updated_at": _format_utc(rows["updated"], PROFILE_TIME_STYLE),
            "signup_at": _format_utc(pop.signup_us[user], PROFILE_TIME_STYLE),
            "country": _enum(COUNTRIES, pop.country[user]),
            "birth_year": birth_year,
            "plan": _enum(PLANS, rows["plan"]),
            "consent_personalization": rows["cp"],
            "consent_marketing": rows["cm"],
            **{column: values.gather(user) for column, values in self.pii.items()},
        })


class _ErasureRenderer(_CsvRenderer):
    columns = ERASURE_COLUMNS

    def __init__(self, pop: _Population):
        self.pop = pop

    def render(self, rows: dict[str, np.ndarray]) -> pl.DataFrame:
        return pl.DataFrame({
            "user_id": self.pop.ids.gather(rows["user"]),
            "requested_at": _format_utc(self.pop.erasure_us[rows["user"]], PROFILE_TIME_STYLE),
        })


def _fragments(key: str, values) -> pl.Series:
    """Enum of `"key":"value"` texts, one per value, then `"key":null` (code len(values))."""
    texts = [f'"{key}":{_json_text(v)}' for v in values] + [f'"{key}":null']
    return pl.Series(key, texts, dtype=pl.Enum(texts))


def _user_fragments(pop: _Population) -> pl.Series:
    """Codes: 0..n-1 the users, then the orphan ids, then null."""
    texts = ('"user_id":"' + pl.concat([pop.ids, pl.Series(ORPHAN_USER_IDS)]) + '"').append(pl.Series(['"user_id":null']))
    return pl.Series("user_id", texts, dtype=pl.Enum(texts))


def _user_column(pop: _Population) -> pl.Series:
    """Same codes as _user_fragments, as a nullable plain column."""
    ids = pl.concat([pop.ids, pl.Series(ORPHAN_USER_IDS)])
    return pl.Series("user_id", ids, dtype=pl.Enum(ids)).append(pl.Series([None], dtype=pl.Enum(ids)))


def _tail_fragments(vocab: _Vocab) -> pl.Series:
    """Every (channel, campaign, touchpoint, property) combination as one Enum: a few thousand texts."""
    channels = [_json_text(c) for c in vocab.channels]
    campaigns = ["null", *map(_json_text, vocab.campaigns)]
    touchpoints = ["null", *map(_json_text, vocab.touchpoints)]
    properties = ["{}", *(f"{{{_json_text(k)}:{_json_text(v)}}}" for k, v in vocab.properties)]
    texts = [
        f'"channel":{ch},"campaign_id":{c},"touchpoint_id":{t},"properties":{p}}}'
        for ch in channels for c in campaigns for t in touchpoints for p in properties
    ]
    return pl.Series("rest", texts, dtype=pl.Enum(texts))


def _json_text(value: str) -> str:
    text = json.dumps(value, ensure_ascii=False)
    if text != f'"{value}"':
        raise ValueError(f"{value!r} would need JSON escaping; vocabulary values must be plain text")
    return text


def _enum(categories, codes: np.ndarray) -> pl.Series:
    """Categorical column from integer codes; a negative code is null."""
    series = pl.Series(list(categories), dtype=pl.Enum(list(categories)))
    return series.gather(pl.Series(codes).set(pl.Series(codes < 0), None))


def _timestamps(rows: dict[str, np.ndarray], styles: tuple[str, str], key: str | None = None) -> pl.Series:
    """ISO 8601 text in the row's style: the source's main or second style, a foreign offset, or garbage.

    With `key`, each value is the JSON fragment `"key":"text"`.
    """
    pre, post = (f'"{key}":"', '"') if key else ("", "")
    style, t = rows["style"], rows["t"]
    text = _format_utc(t, pre + styles[0] + post)
    idx = np.flatnonzero(style == _ST_SECONDARY)
    text = text.scatter(idx, _format_utc(t[idx], pre + styles[1] + post))
    idx = np.flatnonzero((style >= _ST_MIXED) & (style < _ST_BAD))
    offset = style[idx] - _ST_MIXED
    minutes = np.array([_offset_minutes(o) for o in MIXED_OFFSETS])[offset]
    local = _format_utc(t[idx] + minutes * 60_000_000, pre + "%Y-%m-%dT%H:%M:%S%.6f")
    text = text.scatter(idx, local + pl.Series([o + post for o in MIXED_OFFSETS]).gather(offset))
    idx = np.flatnonzero(style >= _ST_BAD)
    return text.scatter(idx, pl.Series([pre + b + post for b in BAD_TIMESTAMPS]).gather(style[idx] - _ST_BAD))


def _offset_minutes(offset: str) -> int:
    hours, minutes = offset[1:].split(":")
    return (-1 if offset[0] == "-" else 1) * (int(hours) * 60 + int(minutes))


def _format_utc(t_us: np.ndarray, style: str) -> pl.Series:
    return pl.Series(np.asarray(t_us, dtype=np.int64)).cast(pl.Datetime("us")).dt.strftime(style)


# --- PII: fake but realistic -------------------------------------------------------------------

FIRST_NAMES = {
    "DE": ("Lukas", "Anna", "Jonas", "Lea", "Felix", "Marie", "Paul", "Sophie", "Maximilian", "Hannah", "Jürgen", "Katrin"),
    "FR": ("Lucas", "Emma", "Hugo", "Léa", "Louis", "Chloé", "Gabriel", "Manon", "Théo", "Camille", "Nathan", "Inès"),
    "NL": ("Daan", "Emma", "Sem", "Julia", "Lucas", "Tess", "Finn", "Sophie", "Bram", "Fenna", "Jesse", "Lotte"),
    "ES": ("Hugo", "Lucía", "Martín", "Sofía", "Pablo", "María", "Alejandro", "Paula", "Daniel", "Valeria", "José", "Carmen"),
    "GB": ("Oliver", "Olivia", "George", "Amelia", "Harry", "Isla", "Jack", "Ava", "Charlie", "Emily", "Thomas", "Grace"),
    "IE": ("Jack", "Emily", "James", "Grace", "Noah", "Fiadh", "Conor", "Aoife", "Seán", "Niamh", "Oisín", "Saoirse"),
}
LAST_NAMES = {
    "DE": ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann"),
    "FR": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau"),
    "NL": ("de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder"),
    "ES": ("García", "Rodríguez", "González", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Ruiz"),
    "GB": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel", "Evans"),
    "IE": ("Murphy", "Kelly", "O'Sullivan", "Walsh", "Smith", "O'Brien", "Byrne", "Ryan", "O'Connor", "O'Neill"),
}
PHONE_FORMATS = {  # prefix, then this many random digits; GB uses Ofcom's range reserved for drama
    "DE": ("+49 15", 9), "FR": ("+33 6", 8), "NL": ("+31 6", 8), "ES": ("+34 6", 8), "GB": ("+44 7700 900", 3), "IE": ("+353 8", 8),
}
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example")
_ASCII = {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", "è": "e", "á": "a", "í": "i", "ó": "o", "ú": "u", "ñ": "n",
          "ç": "c", "'": "", " ": ""}


def _pii(spec: _Spec, pop: _Population) -> dict[str, pl.Series]:
    rng = spec.rng("pii")
    n = pop.n
    first, last, prefix = (np.empty(n, dtype=object) for _ in range(3))
    digits, width = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for code, country in enumerate(COUNTRIES):  # loops over countries, not rows
        idx = np.flatnonzero(pop.country == code)
        first[idx] = np.array(FIRST_NAMES[country], dtype=object)[rng.integers(0, len(FIRST_NAMES[country]), len(idx))]
        last[idx] = np.array(LAST_NAMES[country], dtype=object)[rng.integers(0, len(LAST_NAMES[country]), len(idx))]
        prefix[idx], width[idx] = PHONE_FORMATS[country]
        digits[idx] = rng.integers(0, 10 ** PHONE_FORMATS[country][1], len(idx))
    first_s, last_s = pl.Series(first, dtype=pl.String), pl.Series(last, dtype=pl.String)
    handle = (first_s + "." + last_s).str.to_lowercase().str.replace_many(list(_ASCII), list(_ASCII.values()))
    number = pl.Series(rng.integers(1, 100, n)).cast(pl.String).set(pl.Series(rng.random(n) < 0.5), "")
    domain = pl.Series(EMAIL_DOMAINS).gather(rng.integers(0, len(EMAIL_DOMAINS), n))
    phone_digits = pl.DataFrame({"d": digits, "w": width}).select(pl.col("d").cast(pl.String).str.zfill(pl.col("w"))).to_series()
    return {
        "email": handle + number + "@" + domain,
        "phone": pl.Series(prefix, dtype=pl.String) + phone_digits,
        "full_name": first_s + " " + last_s,
    }


# --- answer keys -------------------------------------------------------------------------------

TRUTH_NOTES = (
    "Each goal metric is a per-user-day indicator: at least one completed deposit / completed card payment / "
    "budget_tool feature_use on that UTC day. For user i it is drawn as Bernoulli(p_i) in the campaign's holdout arm "
    "and Bernoulli(p_i * (1 + relative_effect)) in its treatment arm, p_i capped so that the product stays at or below "
    f"{MAX_TREATED_PROBABILITY}. Arms come from assets.campaigns.holdout_mask (md5 of campaign_id:user_id), the "
    "pipeline's own assignment. The effect applies to every user whose hash arm is treatment, on every day, exported "
    "or not, shown an impression or not. The pipeline measures it inside the audience; random assignment makes the "
    "comparison of the arms unbiased for any set of users chosen without looking at the arm. Everything that removes "
    "or moves rows afterwards (pending/failed status, planted defects, late arrival, duplicates) is drawn without "
    "looking at the arm, so it scales both arms' rates by the same factor: the expected treatment_rate / holdout_rate "
    "is exactly 1 + relative_effect. Caveat: an audience chosen on behaviour the campaign itself lifts (deposits_30d "
    "for the deposit goal, card_payments_30d for the card goal) admits slightly weaker treatment users than holdout "
    "users, so the lift measured inside such an audience is expected a little below the planted effect; a null effect "
    "stays null. Guardrails (unsubscribe_rate) have no planted effect: unsubscribes come at one rate in both arms."
)


def _planted_truth(spec: _Spec, pop: _Population, arms: dict[str, np.ndarray]) -> dict:
    goals = _goals_by_campaign(spec.map)
    campaigns = {}
    for campaign in spec.map.campaigns:
        goal, treated = goals.get(campaign.id), arms[campaign.id]
        behaviour = METRIC_BEHAVIOURS[goal.metric] if goal else None
        campaigns[campaign.id] = {
            "goal_id": goal.id if goal else None,
            "metric": goal.metric if goal else None,
            "behaviour": behaviour,
            "relative_effect": spec.effects[campaign.id],
            "holdout": campaign.holdout,
            "touchpoints": list(campaign.touchpoints),
            "guardrail_effects": {g: 0.0 for g in (goal.guardrails if goal else ())},
            "treatment_users": int(treated.sum()),
            "holdout_users": int((~treated).sum()),
            **({
                "mean_day_probability_holdout": round(float(pop.rates[behaviour][~treated].mean()), 6),
                "mean_day_probability_treatment": round(float(pop.rates[f"{behaviour}_treated"][treated].mean()), 6),
            } if behaviour else {}),
        }
    return {"seed": spec.seed, "users": spec.users, "days": spec.days, "start": spec.start.isoformat(),
            "campaigns": campaigns, "metric_behaviours": METRIC_BEHAVIOURS, "notes": TRUTH_NOTES}


def _defect_plan(spec: _Spec, plan: dict) -> dict:
    return {
        "seed": spec.seed, "users": spec.users, "days": spec.days, "start": spec.start.isoformat(),
        "notes": (
            "Counts are of rows written to the landing files. Each defective row carries exactly one defect; a "
            "duplicate is an exact copy of a clean row, whose first delivery is counted clean. Late rows and "
            "duplicates landing after the window, or on or after their user's erasure request, are not written and "
            "not counted. by_landing_day lists the days with at least one such row."
        ),
        "defects": plan,
    }


# --- small helpers -----------------------------------------------------------------------------


def _clear_previous_sample(landing: Path) -> None:
    for folder in (*SOURCES, "_truth"):
        shutil.rmtree(landing / folder, ignore_errors=True)


def _write_json(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n")
    return path


def _time_of_day(rng: np.random.Generator, k: int, earliest: np.ndarray | int = 0) -> np.ndarray:
    """Microseconds into the day, following the app's daily rhythm, squeezed into [earliest, end of day)."""
    fraction = (rng.choice(24, k, p=HOUR_WEIGHTS) + rng.random(k)) / 24.0
    earliest = np.asarray(earliest, dtype=np.int64)
    return earliest + (fraction * (DAY_US - earliest)).astype(np.int64)


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _in_arrival_order(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows by day, then minute of occurrence; within a minute as generated (sessions start first).

    Two stable sorts of 16-bit keys (numpy sorts those by radix, in linear time), minute then day,
    make one permutation: much cheaper than sorting the microseconds.
    """
    minute = ((rows["t"] // 60_000_000) % 1440).astype(np.uint16)
    order = np.argsort(minute, kind="stable")
    order = order[np.argsort(rows["day"][order], kind="stable")]
    return {key: column[order] for key, column in rows.items()}
