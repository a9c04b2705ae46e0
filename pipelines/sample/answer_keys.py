"""The answer keys written under `_truth/`: the planted truth and the defect plan."""

from __future__ import annotations

import numpy as np

from pipelines.sample.effects import (
    MAX_TREATED_PROBABILITY,
    METRIC_BEHAVIOURS,
    content_campaigns,
    goals_by_campaign,
)
from pipelines.sample.population import Population
from pipelines.sample.spec import Spec
from pipelines.sample.time_to_value import TIME_TO_EVENT_BEHAVIOURS

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
    "stays null. Guardrails (unsubscribe_rate) have no planted effect: unsubscribes come at one rate in both arms. "
    "A time-to-event goal (time_to_first_deposit) is planted as an accelerated failure time instead: a treated new "
    "user's first completed deposit comes (1 + relative_effect) times as long after signup (pipelines/sample/"
    "time_to_value.py); its `time_to_event` entry gives the true restricted mean time to the event up to the "
    "horizon under both arms for the same users (consented new users, potential outcomes) and their relative change, "
    "the figure the goal's interval should cover. Its campaign's impressions, clicks and conversions come from their "
    "own random stream and are appended after the defects, and it draws no unsubscribes, so that every other row "
    "stays as it was drawn without it. "
    "A content campaign (content_touchpoint set; its goal a ratio metric such as click-through) shows its slot to "
    "active users of both arms alike: personalized content with the campaign's id in treatment, the default content "
    "without a campaign id in the holdout. Each impression is clicked with the user's probability p_i "
    "(mean_day_probability_* here: per impression, not per day), times 1 + relative_effect in treatment: the "
    "expected ratio of the arms' clicks per impression is 1 + relative_effect. Its rows come from their own random "
    "stream and are appended clean after each day's other rows, which they leave unchanged."
)


def planted_truth(
    spec: Spec, pop: Population, arms: dict[str, np.ndarray], time_to_event: dict[str, dict] | None = None
) -> dict:
    """`planted_truth.json`: per campaign, the goal, the planted effect, the arms and their day probabilities (a
    time-to-event goal: its true restricted mean times, `time_to_event`)."""
    goals, content = goals_by_campaign(spec.map), content_campaigns(spec.map)
    campaigns = {}
    for campaign in spec.map.campaigns:
        goal, treated = goals.get(campaign.id), arms[campaign.id]
        behaviour = {**METRIC_BEHAVIOURS, **TIME_TO_EVENT_BEHAVIOURS}[goal.metric] if goal else None
        campaigns[campaign.id] = {
            "goal_id": goal.id if goal else None,
            "metric": goal.metric if goal else None,
            "behaviour": behaviour,
            "relative_effect": spec.effects[campaign.id],
            "holdout": campaign.holdout,
            "touchpoints": list(campaign.touchpoints),
            "content_touchpoint": content.get(campaign.id),
            "guardrail_effects": {g: 0.0 for g in (goal.guardrails if goal else ())},
            "treatment_users": int(treated.sum()),
            "holdout_users": int((~treated).sum()),
            **(
                {
                    "mean_day_probability_holdout": round(float(pop.rates[behaviour][~treated].mean()), 6),
                    "mean_day_probability_treatment": round(
                        float(pop.rates[f"{behaviour}_treated"][treated].mean()), 6
                    ),
                }
                if behaviour in pop.rates and goal.metric in METRIC_BEHAVIOURS
                else {}
            ),
            **({"time_to_event": time_to_event[campaign.id]} if campaign.id in (time_to_event or {}) else {}),
        }
    return {
        "seed": spec.seed,
        "users": spec.users,
        "days": spec.days,
        "start": spec.start.isoformat(),
        "campaigns": campaigns,
        "metric_behaviours": METRIC_BEHAVIOURS,
        "notes": TRUTH_NOTES,
    }


def defect_plan(spec: Spec, plan: dict) -> dict:
    """`defect_plan.json`: the exact count of each planted defect, per source and landing day."""
    return {
        "seed": spec.seed,
        "users": spec.users,
        "days": spec.days,
        "start": spec.start.isoformat(),
        "notes": (
            "Counts are of rows written to the landing files. Each defective row carries exactly one defect; a "
            "duplicate is an exact copy of a clean row, whose first delivery is counted clean. Late rows and "
            "duplicates landing after the window, or on or after their user's erasure request, are not written and "
            "not counted. by_landing_day lists the days with at least one such row."
        ),
        "defects": plan,
    }
