"""The checks across the map's sections: every id unique, every reference resolving, every expression safe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from assets.calendar import CALENDAR_COLUMNS
from assets.features import TOUCHPOINT_COUNTS, feature_column_names
from assets.measures import summable_columns
from assets.pyramid_map.kinds import KIND_EXPRESSIONS
from assets.pyramid_map.measures import declaration_problems
from assets.pyramid_map.validation import Problem
from assets.sql_guard import check_condition

if TYPE_CHECKING:
    from assets.pyramid_map.models import PyramidMap


def reference_problems(m: PyramidMap) -> list[Problem]:
    """Every problem between sections, in the order of the map."""
    return [
        *_duplicates(("goals",), [g.id for g in m.goals]),
        *_duplicates(("touchpoints",), [t.id for t in m.touchpoints]),
        *_duplicates(("campaigns",), [c.id for c in m.campaigns]),
        *_duplicates(("segments", "definitions"), [s.id for s in m.segments.definitions]),
        *(
            p
            for i, c in enumerate(m.campaigns)
            for p in _duplicates(("campaigns", i, "contexts"), [x.id for x in c.contexts])
        ),
        *_goal_problems(m),
        *_campaign_problems(m),
        *_metric_problems(m),
        *declaration_problems(m.measures, m.features),
        *_scoring_problems(m),
        *_expression_problems(m),
    ]


def _duplicates(loc: tuple[str, ...], ids: list[str]) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for index, item in enumerate(ids):
        if item in seen:
            problems.append(((*loc, index, "id"), f"duplicate id {item!r}"))
        seen.add(item)
    return problems


def _unknown(loc: tuple[str | int, ...], what: str, name: str, defined: list[str]) -> Problem:
    return loc, f"unknown {what} {name!r}; defined: {', '.join(defined)}"


def _goal_problems(m: PyramidMap) -> list[Problem]:
    metric_ids, campaign_ids = sorted(m.metrics), [c.id for c in m.campaigns]
    problems = []
    if m.north_star.metric not in m.metrics:
        problems.append(_unknown(("north_star", "metric"), "metric", m.north_star.metric, metric_ids))
    for i, goal in enumerate(m.goals):
        if goal.north_star != m.north_star.id:
            problems.append((("goals", i, "north_star"), f"must be the North Star's id {m.north_star.id!r}"))
        if goal.metric not in m.metrics:
            problems.append(_unknown(("goals", i, "metric"), "metric", goal.metric, metric_ids))
        if goal.campaign not in campaign_ids:
            problems.append(_unknown(("goals", i, "campaign"), "campaign", goal.campaign, campaign_ids))
        problems += [
            _unknown(("goals", i, "guardrails"), "metric", guardrail, metric_ids)
            for guardrail in goal.guardrails
            if guardrail not in m.metrics
        ]
    return problems


def _campaign_problems(m: PyramidMap) -> list[Problem]:
    segment_ids = [s.id for s in m.segments.definitions]
    touchpoint_ids = [t.id for t in m.touchpoints]
    problems = []
    for i, campaign in enumerate(m.campaigns):
        problems += [
            _unknown(("campaigns", i, "segments"), "segment", seg, segment_ids)
            for seg in campaign.segments
            if seg not in segment_ids
        ]
        problems += [
            _unknown(("campaigns", i, "touchpoints"), "touchpoint", tp, touchpoint_ids)
            for tp in campaign.touchpoints
            if tp not in touchpoint_ids
        ]
    return problems


def _expression_problems(m: PyramidMap) -> list[Problem]:
    """Segment rules may use the feature columns, metric conditions the daily aggregates (assets/sql_guard.py)."""
    features = feature_column_names(m, list(m.segments.windows))
    problems = [
        (
            ("segments", "definitions", i, "rule"),
            f"segment {seg.id!r}: {problem}; rules may use the feature columns listed in docs/contracts.md",
        )
        for i, seg in enumerate(m.segments.definitions)
        if seg.method == "rule"
        for problem in check_condition(seg.rule, features)
    ]
    readable = [*features, *CALENDAR_COLUMNS]
    problems += [
        (
            ("campaigns", i, "contexts", j, "when"),
            f"context {context.id!r}: {problem}; contexts may use the features and {', '.join(CALENDAR_COLUMNS)}",
        )
        for i, campaign in enumerate(m.campaigns)
        for j, context in enumerate(campaign.contexts)
        for problem in check_condition(context.when, readable)
    ]
    daily = summable_columns(m.measures)
    for metric in m.metrics.values():
        columns, what = (list(TOUCHPOINT_COUNTS), "a touchpoint's counts") if metric.touchpoint else (daily, "")
        for field in KIND_EXPRESSIONS[metric.kind]:
            allowed = f"{'conditions' if field == 'condition' else 'expressions'} may use: {', '.join(columns)}"
            problems += [
                (("metrics", metric.id, field), f"{problem}; {allowed}" + (f" ({what})" if what else ""))
                for problem in check_condition(getattr(metric, field), columns)
            ]
    return problems


def _scoring_problems(m: PyramidMap) -> list[Problem]:
    """The features a scored segment reads are declared: RFM's recency (latest), frequency and monetary
    (windowed); the lifecycle's tenure_days, days_since_last_seen and last_txn_at."""
    declared = m.features
    problems: list[Problem] = []
    if m.segments.rfm is not None:
        rfm, loc = m.segments.rfm, ("segments", "scored", "rfm")
        if rfm.recency not in declared.latest:
            problems.append(_unknown((*loc, "recency"), "latest feature", rfm.recency, list(declared.latest)))
        problems += [
            _unknown((*loc, key), "windowed feature", name, declared.windowed_names)
            for key, names in (("frequency", (rfm.frequency,)), ("monetary", rfm.monetary))
            for name in names
            if name not in declared.windowed_names
        ]
    if m.segments.lifecycle is not None:
        have = {*declared.profile, *declared.latest}
        problems += [
            (("segments", "scored", "lifecycle"), f"reads feature {name!r}, which `features` does not declare")
            for name in ("tenure_days", "days_since_last_seen", "last_txn_at")
            if name not in have
        ]
    return problems


def _metric_problems(m: PyramidMap) -> list[Problem]:
    """A metric's touchpoint exists; a goal's target points the way of its metric's direction."""
    touchpoint_ids = [t.id for t in m.touchpoints]
    problems = [
        _unknown(("metrics", metric.id, "touchpoint"), "touchpoint", metric.touchpoint, touchpoint_ids)
        for metric in m.metrics.values()
        if metric.touchpoint and metric.touchpoint not in touchpoint_ids
    ]
    for i, goal in enumerate(m.goals):
        metric = m.metrics.get(goal.metric)
        if metric is not None and metric.goal_direction() == "decrease" and not -1 < goal.target_relative_lift < 0:
            problems.append(
                (
                    ("goals", i, "target", "relative_lift"),
                    f"metric {metric.id!r} has direction decrease, so the target must be a relative fall between "
                    f"-1 and 0 (e.g. -0.2), got {goal.target_relative_lift}",
                )
            )
        for guardrail in goal.guardrails:
            gm = m.metrics.get(guardrail)
            if gm is not None and gm.guardrail_direction() == "increase" and goal.guardrail_margin(guardrail) >= 1:
                problems.append(
                    (
                        ("goals", i, "guardrails"),
                        f"guardrail {guardrail!r} has direction increase (a fall is the harm), so its margin "
                        f"must be below 1, got {goal.guardrail_margin(guardrail)}",
                    )
                )
    return problems
