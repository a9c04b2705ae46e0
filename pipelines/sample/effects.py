"""Planted effects: which behaviour each goal's metric counts, by how much a campaign lifts it, and the arms.

A share goal's metric is a per-user-day indicator ("at least one completed deposit that UTC day"). For user i
it is drawn as Bernoulli(p_i) in the campaign's holdout arm and Bernoulli(p_i * (1 + effect)) in its
treatment arm, p_i capped so the product stays below 1. A content campaign (its goal a ratio metric at a
touchpoint, e.g. click-through) shows its slot to both arms alike; each impression is clicked with p_i, times
1 + effect in treatment, so the expected ratio of the arms' click-through rates is 1 + effect.
Everything that later removes or moves a row
(non-completed status, defects, late arrival) is drawn without looking at the arm, so it thins both arms
by the same factor and the expected ratio of the two rates stays exactly 1 + effect.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from assets.campaigns import holdout_mask
from assets.lake import connect
from assets.pyramid_map import Goal, PyramidMap
from pipelines.sample.population import Population
from pipelines.sample.spec import Spec
from pipelines.sample.time_to_value import TIME_TO_EVENT_BEHAVIOURS

# Relative effect of a campaign's treatment arm on its goal's metric; override with `effects=`.
# A time-to-event goal's effect scales the time to the event by 1 + effect (pipelines/sample/time_to_value.py).
PLANTED_EFFECTS: dict[str, float] = {
    "savings_nudge": 0.25,
    "card_cashback": 0.15,
    "budget_tips": 0.0,
    "welcome_series": -0.20,
    "personalized_recs": 0.15,
}

# The generated behaviour each goal metric counts; each is a per-user-day "at least one" indicator.
METRIC_BEHAVIOURS: dict[str, str] = {
    "deposit_rate": "deposit",  # >= 1 completed deposit that UTC day
    "card_spend_rate": "card_payment",  # >= 1 completed card payment that UTC day
    "budget_tool_rate": "budget_tool",  # >= 1 feature_use with properties.feature = budget_tool
    "rec_ctr": "content_click",  # a click per impression at the campaign's content touchpoint (a ratio metric)
}

# Base day probabilities are capped so that p * (1 + effect) stays at or below this (no clipping).
MAX_TREATED_PROBABILITY = 0.95


def campaign_effects(pyramid_map: PyramidMap, overrides: Mapping[str, float] | None) -> dict[str, float]:
    """The relative effect per campaign of the map: PLANTED_EFFECTS, then `overrides`; checked against the map."""
    campaign_ids = [c.id for c in pyramid_map.campaigns]
    unknown = sorted(set(overrides or {}) - set(campaign_ids))
    if unknown:
        raise ValueError(f"effects name unknown campaigns {unknown}; the map has {campaign_ids}")
    effects = {cid: float(PLANTED_EFFECTS.get(cid, 0.0)) for cid in campaign_ids}
    effects.update({cid: float(v) for cid, v in (overrides or {}).items()})
    goals = goals_by_campaign(pyramid_map)
    for cid, effect in effects.items():
        if effect <= -1:
            raise ValueError(f"the effect of {cid!r} is a relative change and must be above -1, got {effect}")
        if effect and cid not in goals:
            raise ValueError(f"campaign {cid!r} has no goal in the map, so no effect ({effect}) can be planted")
    return effects


def goals_by_campaign(pyramid_map: PyramidMap) -> dict[str, Goal]:
    """The one goal each campaign serves, provided the generator can plant an effect on its metric."""
    goals: dict[str, Goal] = {}
    for goal in pyramid_map.goals:
        if goal.metric not in METRIC_BEHAVIOURS and goal.metric not in TIME_TO_EVENT_BEHAVIOURS:
            raise ValueError(
                f"goal {goal.id!r} measures {goal.metric!r}, a metric the sample generator cannot plant an effect "
                f"on; it knows {', '.join(sorted([*METRIC_BEHAVIOURS, *TIME_TO_EVENT_BEHAVIOURS]))} (METRIC_BEHAVIOURS "
                f"in {__name__}, TIME_TO_EVENT_BEHAVIOURS)"
            )
        if goal.campaign in goals:
            raise ValueError(f"campaign {goal.campaign!r} serves two goals; the sample plants one effect per campaign")
        goals[goal.campaign] = goal
    return goals


def content_campaigns(pyramid_map: PyramidMap) -> dict[str, str]:
    """Campaign id -> touchpoint of each campaign whose goal is a ratio metric counted at one touchpoint: its
    slot is shown to both arms (the holdout sees the default content), so the ratio is defined in both."""
    return {
        goal.campaign: metric.touchpoint
        for goal in pyramid_map.goals
        if (metric := pyramid_map.metrics[goal.metric]).kind == "ratio" and metric.touchpoint
    }


def treatment_arms(spec: Spec, pop: Population) -> dict[str, np.ndarray]:
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


def plant_effects(spec: Spec, pop: Population, arms: dict[str, np.ndarray]) -> None:
    """Cap each planted behaviour's base day probability; store `<behaviour>_treated` = p * (1 + effect) by arm."""
    multipliers = {b: np.ones(pop.n) for b in METRIC_BEHAVIOURS.values()}
    largest = dict.fromkeys(multipliers, 1.0)
    for campaign_id, goal in goals_by_campaign(spec.map).items():
        if goal.metric not in METRIC_BEHAVIOURS:  # a time to event: planted on the rows (time_to_value.py)
            continue
        behaviour, effect = METRIC_BEHAVIOURS[goal.metric], spec.effects[campaign_id]
        multipliers[behaviour] *= np.where(arms[campaign_id], 1.0 + effect, 1.0)
        largest[behaviour] *= max(1.0, 1.0 + effect)
    for behaviour, multiplier in multipliers.items():
        pop.rates[behaviour] = np.minimum(pop.rates[behaviour], MAX_TREATED_PROBABILITY / largest[behaviour])
        pop.rates[f"{behaviour}_treated"] = pop.rates[behaviour] * multiplier
