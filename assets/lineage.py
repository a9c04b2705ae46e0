"""Column use: which derived columns and which map items each raw column feeds, and what a withheld
column therefore blocks upward (raw column -> daily aggregates -> features -> segments, campaigns, goals).

Not data quality: the validation decides which columns are withheld; this module says what needs them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assets import features

if TYPE_CHECKING:  # pragma: no cover - typing only
    from assets.pyramid_map import PyramidMap


_DERIVED = {  # windowed features computed from several user_daily columns
    "active_days": {"events"},
    "txn_days": {"txns"},
    "balance_in": {"deposit_amount", "transfer_in_amount"},
    "balance_out": {"card_amount", "transfer_out_amount"},
    **{name: set(inputs) for name, inputs in features.AVERAGE_AMOUNTS.items()},
}


def derived_columns(daily: Iterable[str], windows: Iterable[int]) -> set[str]:
    """The given user_daily columns and every user_features column computed from any of them."""
    daily, windows = set(daily), list(windows)
    out = set(daily)
    for suffix in [*(f"{w}d" for w in windows), features.HISTORY]:  # every window and the covered part
        out |= {f"{name}_{suffix}" for name in features.WINDOWED_SUMS if name in daily}
        out |= {f"{name}_{suffix}" for name, inputs in _DERIVED.items() if inputs & daily}
    if "last_seen_at" in daily:
        out.add("days_since_last_seen")
    return out


def column_lineage(windows: Iterable[int]) -> dict[tuple[str, str], set[str]]:
    """(source, canonical column) -> every user_daily and user_features column computed from it
    (assets/features.py). A column not listed feeds nothing above the actionable tables. Keys, ids
    and timestamps of a row feed every aggregate of the row; `status` every transaction aggregate
    (only completed ones count); consent also decides eligibility (see `blocked_by`)."""
    windows = list(windows)
    txn_daily = [
        *(column for pair in features.TXN_TYPE_AGGREGATES.values() for column in pair),
        "txns",
        "first_txn_at",
        "last_txn_at",
    ]
    event_daily = [*(c for c in features.DAILY_COUNTS if c not in txn_daily), "last_seen_at", *features.LAST_CHANNEL]
    every_event, every_txn = derived_columns(event_daily, windows), derived_columns(txn_daily, windows)
    profile_all = {"country", "plan", "age_band", "tenure_days", "consent_personalization"}
    return {
        **{("events", c): every_event for c in ("event_id", "user_id", "occurred_at", "event_type")},
        ("events", "session_id"): derived_columns(["sessions"], windows),
        ("events", "properties"): derived_columns(["budget_tool_uses"], windows),
        ("events", "channel"): set(features.LAST_CHANNEL),
        ("events", "campaign_id"): set(),
        ("events", "touchpoint_id"): set(),
        **{
            ("transactions", c): every_txn
            for c in ("txn_id", "user_id", "occurred_at", "amount", "currency", "txn_type", "status")
        },
        ("transactions", "merchant_category"): set(),
        **{("profiles", c): profile_all for c in ("user_id", "updated_at")},
        ("profiles", "signup_at"): {"tenure_days"},
        ("profiles", "country"): {"country"},
        ("profiles", "birth_year"): {"age_band"},
        ("profiles", "plan"): {"plan"},
        ("profiles", "consent_personalization"): {"consent_personalization"},
        ("profiles", "consent_marketing"): set(),
    }


def _asset_inputs(fed_by: dict[tuple[str, str], set[str]], column: str) -> list[tuple[str, str]]:
    return sorted((f"actionable_{source}", c) for (source, c), fed in fed_by.items() if column in fed)


def daily_column_lineage(windows: Iterable[int]) -> dict[str, list[tuple[str, str]]]:
    """user_daily column -> the (asset, column) pairs of the actionable tables it is computed from."""
    fed_by = column_lineage(windows)
    return {c: _asset_inputs(fed_by, c) for c in features.DAILY_COLUMNS[2:]}


def feature_column_lineage(windows: Iterable[int]) -> dict[str, list[tuple[str, str]]]:
    """user_features column -> the user_daily and actionable_profiles columns it is computed from (the keys
    and the coverage flags, which the calendar decides, have none)."""
    windows = list(windows)
    profiles = {key: fed for key, fed in column_lineage(windows).items() if key[0] == "profiles"}
    feeds = {d: derived_columns([d], windows) for d in features.DAILY_COLUMNS[2:]}
    lineage = {}
    for column in features.feature_column_names(windows):
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
    lineage = column_lineage(pyramid_map.segments.windows)
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
    feature computed from a user_daily column that the goal's metric condition reads."""
    segments = {d.id: d for d in pyramid_map.segments.definitions}
    campaigns = {c.id: c for c in pyramid_map.campaigns}
    warnings = []
    for goal in pyramid_map.goals:
        campaign = campaigns[goal.campaign]
        measured_daily = set().union(*(expression_columns(e) for e in pyramid_map.metrics[goal.metric].expressions()))
        measured = derived_columns(measured_daily, pyramid_map.segments.windows)
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
