"""Column use: which derived columns and which map items each raw column feeds, and what a withheld
column therefore blocks upward (raw column -> measures -> features -> segments, campaigns, goals), derived
from the map's declared measures and features: no hand-kept list.

Not data quality: the validation decides which columns are withheld; this module says what needs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from assets.contract import CANONICAL_COLUMNS, KEY_COLUMNS, MEASURE_SOURCES, TIME_COLUMN
from assets.features import HISTORY, feature_column_names
from assets.quality.suites import suite_path

if TYPE_CHECKING:  # pragma: no cover - typing only
    from assets.pyramid_map import PyramidMap

# Profile features (a fixed catalogue, assets/features.py): profile columns -> the features computed from them;
# the snapshot's user_id and updated_at decide every profile feature.
_PROFILE_INPUTS = {
    "signup_at": {"tenure_days"},
    "country": {"country"},
    "birth_year": {"age_band"},
    "plan": {"plan"},
    "consent_personalization": {"consent_personalization"},
    "consent_marketing": set(),
}


@cache
def row_rule_columns(source: str) -> frozenset[str]:
    """The columns of the source's row expectations (expectations/<source>.json, meta.decides row): a row
    failing one is quarantined, so every measure of the source counts only rows that pass them."""
    document = json.loads(suite_path(source).read_text(encoding="utf-8"))
    return frozenset(
        e["kwargs"]["column"]
        for e in document.get("expectations", [])
        if e.get("meta", {}).get("decides") == "row" and e.get("kwargs", {}).get("column") in CANONICAL_COLUMNS[source]
    )


def measure_inputs(pyramid_map: PyramidMap) -> dict[str, set[tuple[str, str]]]:
    """measure -> the (source, column) pairs it reads: the source's key, user and time, the columns of its row
    expectations (which rows count at all), its column and the columns its filter names."""
    inputs = {}
    for m in pyramid_map.measures.values():
        columns = {KEY_COLUMNS[m.source], "user_id", TIME_COLUMN, *row_rule_columns(m.source)}
        columns |= {m.column} if m.column else set()
        columns |= expression_columns(m.where)
        inputs[m.name] = {(m.source, c) for c in columns}
    return inputs


def _measure_of(pyramid_map: PyramidMap, daily_column: str) -> str | None:
    """The measure writing a user_daily column (a `last` measure also writes `<name>_at`)."""
    for m in pyramid_map.measures.values():
        if daily_column in m.columns():
            return m.name
    return None


def _features_of(pyramid_map: PyramidMap, measure: str) -> set[str]:
    """Every user_features column computed from a measure, over every window and the covered part."""
    declared = pyramid_map.features
    suffixes = [*(f"{w}d" for w in pyramid_map.segments.windows), HISTORY]
    windowed = [name for name in declared.windowed_sums if name == measure]
    windowed += [name for name, spec in declared.windowed.items() if measure in spec.measures()]
    latest = {name for name, spec in declared.latest.items() if spec.measure == measure}
    return latest | {f"{name}_{suffix}" for name in windowed for suffix in suffixes}


def derived_columns(daily: Iterable[str], pyramid_map: PyramidMap) -> set[str]:
    """The given user_daily columns and every user_features column computed from any of them."""
    daily = set(daily)
    out = set(daily)
    for column in daily:
        measure = _measure_of(pyramid_map, column)
        out |= _features_of(pyramid_map, measure) if measure else set()
    return out


def column_lineage(pyramid_map: PyramidMap) -> dict[tuple[str, str], set[str]]:
    """(source, canonical column) -> every user_daily and user_features column computed from it, from the
    map's declarations (measure_inputs; profile features: _PROFILE_INPUTS). A column not listed feeds nothing
    above the actionable tables; consent also decides eligibility (see `blocked_by`)."""
    lineage: dict[tuple[str, str], set[str]] = {
        (source, c): set() for source in MEASURE_SOURCES for c in CANONICAL_COLUMNS[source]
    }
    for name, inputs in measure_inputs(pyramid_map).items():
        fed = derived_columns(pyramid_map.measures[name].columns(), pyramid_map)
        for key in inputs:
            lineage[key] = lineage.get(key, set()) | fed
    profile = set(pyramid_map.features.profile)
    lineage |= {("profiles", c): set(profile) for c in ("user_id", "updated_at")}
    lineage |= {("profiles", c): fed & profile for c, fed in _PROFILE_INPUTS.items()}
    return lineage


def _asset_inputs(fed_by: dict[tuple[str, str], set[str]], column: str) -> list[tuple[str, str]]:
    return sorted((f"actionable_{source}", c) for (source, c), fed in fed_by.items() if column in fed)


def daily_column_lineage(pyramid_map: PyramidMap) -> dict[str, list[tuple[str, str]]]:
    """user_daily column -> the (asset, column) pairs of the actionable tables it is computed from."""
    fed_by = column_lineage(pyramid_map)
    return {c: _asset_inputs(fed_by, c) for m in pyramid_map.measures.values() for c in m.columns()}


def feature_column_lineage(pyramid_map: PyramidMap) -> dict[str, list[tuple[str, str]]]:
    """user_features column -> the user_daily and actionable_profiles columns it is computed from (the keys
    and the coverage flags, which the calendar decides, have none)."""
    profiles = {key: fed for key, fed in column_lineage(pyramid_map).items() if key[0] == "profiles"}
    daily = [c for m in pyramid_map.measures.values() for c in m.columns()]
    feeds = {d: derived_columns([d], pyramid_map) for d in daily}
    lineage = {}
    for column in feature_column_names(pyramid_map, list(pyramid_map.segments.windows)):
        inputs = [("user_daily", d) for d, fed in feeds.items() if column in fed] + _asset_inputs(profiles, column)
        if inputs:
            lineage[column] = inputs
    return lineage


@dataclass
class Blocked:
    """What withheld columns block. Each map is item id -> the withheld inputs that block it, as
    `source.column (expectation)` texts. `columns`: withheld input -> derived columns it feeds."""

    withheld: list[tuple[str, str, str]]
    columns: dict[str, list[str]] = field(default_factory=dict)
    segments: dict[str, list[str]] = field(default_factory=dict)
    campaigns: dict[str, list[str]] = field(default_factory=dict)
    goals: dict[str, list[str]] = field(default_factory=dict)
    metrics: dict[str, list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.segments or self.campaigns or self.goals or self.metrics)

    def describe(self) -> str:
        if not self.withheld:
            return "every input column promoted"
        lines = [f"withheld: {', '.join(self.columns)}"]
        for kind in ("segments", "campaigns", "goals", "metrics"):
            for item, causes in getattr(self, kind).items():
                lines.append(f"{kind[:-1]} {item} blocked by {', '.join(causes)}")
        return "\n".join(lines)


def expression_columns(text: str) -> set[str]:
    """The column names a map expression (segment rule, metric condition) reads."""
    import sqlglot
    from sqlglot import exp

    if not text or not text.strip():
        return set()
    return {node.name for node in sqlglot.parse_one(text, dialect="duckdb").find_all(exp.Column)}


def blocked_by(pyramid_map: PyramidMap, withheld: Iterable[tuple]) -> Blocked:
    """The segments, campaigns, goals and metrics that need a withheld column.

    `withheld`: (source, column) or (source, column, expectation). A segment is blocked when its rule
    (or, for a scored segment, its declared inputs) reads a feature fed by a withheld column, and every
    segment when the consent column is withheld (eligibility cannot be known); a campaign when one of
    its segments is; a metric when its condition reads a daily column fed by a withheld column; a goal
    when its metric, a guardrail or its campaign is."""
    items = [(w[0], w[1], w[2] if len(w) > 2 else "") for w in withheld]
    lineage = column_lineage(pyramid_map)
    result = Blocked(withheld=items)
    feeds: dict[str, set[str]] = {}
    for source, column, expectation in items:
        label = f"{source}.{column}" + (f" ({expectation})" if expectation else "")
        fed = set(lineage.get((source, column), set()))
        feeds[label] = fed
        result.columns[label] = sorted(fed)
    consent = pyramid_map.actionable.consent_column

    def add(target: dict, key: str, cause: str) -> None:
        causes = target.setdefault(key, [])
        if cause not in causes:
            causes.append(cause)

    for definition in pyramid_map.segments.definitions:
        used = segment_inputs(definition)
        for label, fed in feeds.items():
            if used & fed or consent in fed:
                add(result.segments, definition.id, label)
    for campaign in pyramid_map.campaigns:
        for segment in campaign.segments:
            for cause in result.segments.get(segment, []):
                add(result.campaigns, campaign.id, cause)
        used = set().union(*(expression_columns(x.when) for x in campaign.contexts))
        for label, fed in feeds.items():
            if used & fed:
                add(result.campaigns, campaign.id, label)
    for metric_id, metric in pyramid_map.metrics.items():
        used = set().union(*(expression_columns(e) for e in metric.expressions()))
        for label, fed in feeds.items():
            if used & fed:
                add(result.metrics, metric_id, label)
    for goal in pyramid_map.goals:
        for metric_id in (goal.metric, *goal.guardrails):
            for cause in result.metrics.get(metric_id, []):
                add(result.goals, goal.id, cause)
        for cause in result.campaigns.get(goal.campaign, []):
            add(result.goals, goal.id, cause)
    return result


def segment_inputs(definition: object) -> set[str]:
    """The feature columns a segment reads: its rule's, or the declared inputs of a scored one."""
    inputs = getattr(definition, "inputs", ())
    return set(inputs) if inputs else expression_columns(definition.rule)


def selection_warnings(pyramid_map: PyramidMap) -> list[str]:
    """A campaign whose segments or contexts select on what its goal measures: treatment changes who is
    selected, so the arms stop being comparable (`pyramid check` prints these). Judged on columns: a
    feature computed from a user_daily column that the goal's metric condition reads. An A/A campaign
    (`treated: false`) treats nobody, so nothing it selects on can move."""
    segments = {d.id: d for d in pyramid_map.segments.definitions}
    campaigns = {c.id: c for c in pyramid_map.campaigns}
    warnings = []
    for goal in pyramid_map.goals:
        campaign = campaigns[goal.campaign]
        if not campaign.treated:
            continue
        measured_daily = set().union(*(expression_columns(e) for e in pyramid_map.metrics[goal.metric].expressions()))
        measured = derived_columns(measured_daily, pyramid_map)
        selectors = [(f"segment {s}", segment_inputs(segments[s])) for s in campaign.segments if s in segments]
        selectors += [(f"context {x.id}", expression_columns(x.when)) for x in campaign.contexts]
        for what, used in selectors:
            overlap = sorted(used & measured)
            if overlap:
                warnings.append(
                    f"campaign {campaign.id}: {what} selects on {', '.join(overlap)}, computed from "
                    f"{', '.join(sorted(measured_daily))}, which goal {goal.id} measures: treatment changes who is "
                    "selected, so the arms stop being comparable"
                )
    return warnings
