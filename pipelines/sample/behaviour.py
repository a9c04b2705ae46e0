"""Behaviour: each day's sessions, views, searches, feature uses and campaign events, as arrays of codes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from assets.actionable import EVENT_TYPES  # the contract's types, in its order (indices are generated)
from assets.pyramid_map import PyramidMap
from pipelines.sample.population import Population, earliest, eligible
from pipelines.sample.rows import concat, in_arrival_order
from pipelines.sample.spec import DAY_US, Spec, time_of_day

PAGES = ("home", "savings", "cards", "transfers", "budget", "offers", "settings", "help")
PAGE_WEIGHTS = (0.35, 0.15, 0.15, 0.12, 0.08, 0.06, 0.05, 0.04)
SEARCH_QUERIES = (
    "interest rate",
    "savings goal",
    "card limit",
    "budget",
    "transfer abroad",
    "cashback",
    "round ups",
    "freeze card",
    "statement",
    "recurring deposit",
)
FEATURES = ("budget_tool", "savings_goal", "card_controls")
DEVICES = ("ios", "android", "desktop", "mobile_web")  # app sessions: the first two

P_IMPRESSION = 0.30  # per active day of a treatment user, per campaign
P_CLICK = 0.10  # per impression
P_CONVERSION = 0.30  # per click
UNSUBSCRIBE_RATE = 0.0005  # per user-day and campaign, both arms alike
# Content campaigns (`effects.content_campaigns`): a slot beside the search results, both arms alike.
P_CONTENT_SHOWN = 0.9  # per day with a search: the slot is shown (then 1 + Poisson(EXTRA_CONTENT_VIEWS) impressions)
EXTRA_CONTENT_VIEWS = 3.0
CONTENT_CLICK_BETA = (2.0, 18.0)  # each user's click probability per impression, mean 0.10
EXTRA_BUDGET_TOOL_USES = 0.3
SEARCH = EVENT_TYPES.index("search")


class Vocab:
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

    def tail(self, channel: ArrayLike, campaign: ArrayLike, touchpoint: ArrayLike, prop: ArrayLike) -> np.ndarray:
        """The combined code of each row's channel, campaign, touchpoint and property (-1: none)."""
        _, n_campaign, n_touchpoint, n_prop = self.sizes()
        code = np.asarray(channel, dtype=np.int32)
        for part, size in ((campaign, n_campaign), (touchpoint, n_touchpoint), (prop, n_prop)):
            code = code * size + np.asarray(part, dtype=np.int32) + 1  # -1 (none) becomes 0
        return code.astype(np.int16 if np.prod(self.sizes()) < 2**15 else np.int32)


def apart_campaigns(pyramid_map: PyramidMap) -> set[str]:
    """Campaigns whose events are drawn apart (their own random stream, appended after the defects): those of a
    time-to-event goal, added to the sample after the others, whose drawing would otherwise shift every later event
    (pipelines/sample/time_to_value.py)."""
    return {g.campaign for g in pyramid_map.goals if pyramid_map.metrics[g.metric].kind == "time_to_event"}


def content_rates(spec: Spec, n: int) -> dict[str, np.ndarray]:
    """Each user's click probability per content impression (`content_click`), from the content stream."""
    return {"content_click": spec.rng("content").beta(*CONTENT_CLICK_BETA, n)}


def generate_events(
    spec: Spec, pop: Population, arms: dict[str, np.ndarray], content: dict[str, str], say: Callable
) -> tuple[dict, int, dict | None, dict | None]:
    """The clean events of every activity day, in arrival order; how many sessions were drawn; the events of the
    `apart_campaigns` and those of the content campaigns (`content`: campaign id -> touchpoint id), each drawn from
    its own stream (None without one), to append after the defects."""
    vocab = Vocab(spec.map)
    apart = apart_campaigns(spec.map)
    treatment = [None if c in apart or c in content else arms[c] for c in vocab.campaigns]
    treatment_apart = [arms[c] if c in apart else None for c in vocab.campaigns]
    slots = [(vocab.campaigns.index(c), vocab.touchpoints.index(tp), arms[c]) for c, tp in content.items()]
    parts, apart_parts, content_parts, session_base = [], [], [], 0
    for day in range(spec.days):
        day_parts, day_apart, sessions = _day_events(spec, pop, vocab, (treatment, treatment_apart), day, session_base)
        parts += day_parts
        apart_parts += day_apart
        day_events = concat(day_parts)
        searched = np.isin(sessions.actors, day_events["user"][day_events["etype"] == SEARCH])
        content_parts += _day_content(spec, pop, vocab, slots, day, sessions, searched)
        session_base += sessions.count
        if (day + 1) % 10 == 0 or day + 1 == spec.days:
            say(f"  events: {day + 1}/{spec.days} days drawn")
    later = in_arrival_order(concat(apart_parts)) if apart_parts else None
    content_events = in_arrival_order(concat(content_parts)) if content_parts else None
    return in_arrival_order(concat(parts)), session_base, later, content_events


def _day_content(
    spec: Spec, pop: Population, vocab: Vocab, slots: list, day: int, sessions: _Sessions, searched: np.ndarray
) -> list:
    """The content campaigns' impressions and clicks of the day (their own random stream), for the day's actors
    who searched (`searched`, by actor position)."""
    rng, parts = spec.rng("content", day), []
    for ci, touchpoint, treated in slots:
        parts += _content_events(rng, pop.rates, vocab, sessions, ci, touchpoint, treated[sessions.actors], searched)
    for part in parts:
        part["t"] += spec.day_start(day)
        part["day"] = np.full(len(part["t"]), day, dtype=np.uint16)
    return parts


def _campaign_parts(
    rng: np.random.Generator,
    vocab: Vocab,
    sessions: _Sessions,
    treatment: list,
    users: np.ndarray,
    earliest_us: np.ndarray,
    unsubscribes: bool = True,
) -> list[dict]:
    """Impressions, clicks and conversions of each campaign's treated actors, then (`unsubscribes`) its opt-outs."""
    parts = []
    for ci, in_treatment in enumerate(treatment):
        if in_treatment is None:
            continue
        parts += _campaign_events(rng, vocab, sessions, ci, in_treatment[sessions.actors])
        if unsubscribes:
            parts.append(_unsubscribes(rng, vocab, ci, users, earliest_us))
    return parts


def _day_events(spec: Spec, pop: Population, vocab: Vocab, treatments: tuple, day: int, session_base: int):
    rng, rates = spec.rng("events", day), pop.rates
    day_start = spec.day_start(day)
    users = eligible(pop, day)
    budget_day = rng.random(len(users)) < rates["budget_tool_treated"][users]
    active = (rng.random(len(users)) < rates["p_active"][users]) | budget_day  # using a tool means a visit
    actors, budget_day = users[active], budget_day[active]
    sessions = _Sessions.draw(rng, rates, actors, earliest(pop, actors, day_start), session_base)
    query = np.array([vocab.prop("query", q) for q in SEARCH_QUERIES])
    parts = [
        sessions.starts(rng, rates, vocab),
        sessions.views(rng, rates, vocab),
        sessions.actions(rng, rng.poisson(rates["lam_search"][actors]), "search", vocab, query),
        sessions.actions(
            rng,
            budget_day * (1 + rng.poisson(EXTRA_BUDGET_TOOL_USES, len(actors))),
            "feature_use",
            vocab,
            vocab.prop("feature", "budget_tool"),
        ),
        sessions.actions(
            rng,
            rng.poisson(rates["lam_savings_goal"][actors]),
            "feature_use",
            vocab,
            vocab.prop("feature", "savings_goal"),
        ),
        sessions.actions(
            rng,
            rng.poisson(rates["lam_card_controls"][actors]),
            "feature_use",
            vocab,
            vocab.prop("feature", "card_controls"),
        ),
    ]
    parts += _campaign_parts(rng, vocab, sessions, treatments[0], users, earliest(pop, users, day_start))
    apart = _campaign_parts(
        spec.rng("time_to_event", 2, day), vocab, sessions, treatments[1], users, earliest(pop, users, day_start), False
    )  # no opt-outs: the unsubscribe guardrail counts every campaign's, and the other goals' must stay as drawn
    for part in parts + apart:
        part["t"] += day_start
        part["day"] = np.full(len(part["t"]), day, dtype=np.uint16)
    return parts, apart, sessions


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
            actors=actors,
            first=np.cumsum(per_actor) - per_actor,
            per_actor=per_actor,
            user=actors[owner],
            start=time_of_day(rng, count, earliest[owner]),
            duration=(rng.exponential(240e6, count) + 30e6).astype(np.int64),
            app=rng.random(count) < rates["p_app"][actors[owner]],
            ids=(session_base + np.arange(count)).astype(np.int32),
        )

    @property
    def count(self) -> int:
        return len(self.user)

    def pick(self, rng: np.random.Generator, actor_positions: np.ndarray) -> np.ndarray:
        """A random session of each given actor."""
        spread = rng.random(len(actor_positions)) * self.per_actor[actor_positions]
        return self.first[actor_positions] + spread.astype(np.int64)

    def time_in(self, rng: np.random.Generator, session: np.ndarray) -> np.ndarray:
        offset = (rng.random(len(session)) * self.duration[session]).astype(np.int64) + 1
        return np.minimum(self.start[session] + offset, DAY_US - 1)

    def starts(self, rng: np.random.Generator, rates: dict[str, np.ndarray], vocab: Vocab) -> dict:
        first_kind = rng.random(self.count) < np.where(self.app, rates["p_ios"][self.user], 0.7)
        # ios android desktop mobile_web
        device = vocab.prop("device", DEVICES[0]) + np.where(self.app, 0, 2) + ~first_kind
        return _event_rows(vocab, self.user, "session_start", self.start, self.ids, 1 - self.app, prop=device)

    def views(self, rng: np.random.Generator, rates: dict[str, np.ndarray], vocab: Vocab) -> dict:
        per_session = 1 + rng.poisson(rates["lam_views"][self.user])
        session = np.repeat(np.arange(self.count), per_session)
        app = self.app[session]
        page = rng.choice(len(PAGES), len(session), p=PAGE_WEIGHTS)
        prop = np.where(app, vocab.prop("screen", PAGES[0]), vocab.prop("page", PAGES[0])) + page
        event_type = np.where(app, EVENT_TYPES.index("screen_view"), EVENT_TYPES.index("page_view"))
        t = self.time_in(rng, session)
        return _event_rows(vocab, self.user[session], event_type, t, self.ids[session], 1 - app, prop=prop)

    def actions(
        self, rng: np.random.Generator, per_actor: np.ndarray, event_type: str, vocab: Vocab, props: np.ndarray | int
    ) -> dict:
        """`per_actor[i]` events of one type for actor i, each in a random session of theirs."""
        session = self.pick(rng, np.repeat(np.arange(len(self.actors)), per_actor))
        if isinstance(props, np.ndarray):
            props = props[rng.integers(0, len(props), len(session))]
        return _event_rows(
            vocab,
            self.user[session],
            event_type,
            self.time_in(rng, session),
            self.ids[session],
            1 - self.app[session],
            prop=props,
        )


def _campaign_events(
    rng: np.random.Generator, vocab: Vocab, sessions: _Sessions, ci: int, treated: np.ndarray
) -> list[dict]:
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


def _content_events(
    rng: np.random.Generator,
    rates: dict[str, np.ndarray],
    vocab: Vocab,
    sessions: _Sessions,
    ci: int,
    touchpoint: int,
    treated: np.ndarray,
    searched: np.ndarray,
) -> list[dict]:
    """A content slot at `touchpoint`, shown on some days with a search to users of both arms: personalized (the
    campaign's, campaign_id set) in treatment, the default list (no campaign_id) in the holdout. Each impression
    is clicked with the user's probability, times 1 + effect in treatment (`content_click_treated`)."""
    shown = np.flatnonzero(searched & (rng.random(len(treated)) < P_CONTENT_SHOWN))
    actor = np.repeat(shown, 1 + rng.poisson(EXTRA_CONTENT_VIEWS, len(shown)))
    session = sessions.pick(rng, actor)
    user, personalized = sessions.user[session], treated[actor]
    t = sessions.time_in(rng, session)
    chance = np.where(personalized, rates["content_click_treated"][user], rates["content_click"][user])
    clicked = rng.random(len(t)) < chance
    t_click = np.minimum(t[clicked] + rng.exponential(45e6, clicked.sum()).astype(np.int64) + 1, DAY_US - 1)
    channel = vocab.touchpoint_channel[touchpoint]
    campaign = np.where(personalized, ci, -1)
    return [
        _event_rows(vocab, user, "impression", t, -1, channel, campaign=campaign, touchpoint=touchpoint),
        _event_rows(
            vocab, user[clicked], "click", t_click, -1, channel, campaign=campaign[clicked], touchpoint=touchpoint
        ),
    ]


def _unsubscribes(rng: np.random.Generator, vocab: Vocab, ci: int, users: np.ndarray, earliest: np.ndarray) -> dict:
    """Drawn over every user who may act, whatever the arm: the guardrail has no planted effect."""
    hit = rng.random(len(users)) < UNSUBSCRIBE_RATE
    touchpoints = vocab.campaign_touchpoints[ci]
    touchpoint = touchpoints[rng.integers(0, len(touchpoints), hit.sum())]
    t = time_of_day(rng, int(hit.sum()), earliest[hit])
    return _campaign_rows(vocab, users[hit], "unsubscribe", t, ci, touchpoint)


def _campaign_rows(
    vocab: Vocab, user: np.ndarray, event_type: str, t: np.ndarray, ci: int, touchpoint: np.ndarray
) -> dict:
    """Campaign events come from the messaging system: no session, the touchpoint's channel."""
    channel = vocab.touchpoint_channel[touchpoint]
    return _event_rows(vocab, user, event_type, t, -1, channel, campaign=ci, touchpoint=touchpoint)


def _event_rows(
    vocab: Vocab,
    user: np.ndarray,
    event_type: str | np.ndarray,
    t: np.ndarray,
    session: np.ndarray | int,
    channel: np.ndarray,
    *,
    campaign: np.ndarray | int = -1,
    touchpoint: np.ndarray | int = -1,
    prop: np.ndarray | int = -1,
) -> dict:
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
