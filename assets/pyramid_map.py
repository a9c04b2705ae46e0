"""The program's map, `pyramid.yaml`: loaded, typed and checked before anything runs.

"Start with constraints": every reference must resolve, every segment rule may use only feature
columns, every goal metric only promoted daily aggregates. An error names the file, the line and the
key path, and says what is allowed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from assets.features import DAILY_COUNTS, DAILY_AMOUNTS, feature_column_names
from assets.lake import PROJECT_ROOT
from assets.sql_guard import check_condition

DEFAULT_MAP_PATH = PROJECT_ROOT / "pyramid.yaml"
SEGMENT_KINDS = ("behavioral", "demographic", "intent", "value")
# Scored segments (docs/segments.md): the standard RFM groups and the lifecycle stages. Each becomes a
# segment `rfm_<group>` (kind value) or `lifecycle_<stage>` (kind behavioral).
RFM_GROUPS = ("champions", "loyal", "potential_loyalists", "new", "promising", "need_attention",
              "about_to_sleep", "at_risk", "cannot_lose_them", "hibernating", "lost")
LIFECYCLE_STAGES = ("new", "active", "at_risk", "dormant", "churned")
SEGMENT_METHODS = ("rule", "rfm", "lifecycle")
SOURCE_NAMES = ("events", "profiles", "transactions", "erasure_requests")
SOURCE_FORMATS = ("jsonl", "csv")


class MapError(ValueError):
    """A problem in pyramid.yaml, located by file, line and key path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("pyramid map is invalid:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class NorthStar:
    id: str
    description: str
    metric: str


@dataclass(frozen=True)
class Metric:
    id: str
    description: str
    window_days: int
    condition: str


@dataclass(frozen=True)
class Goal:
    id: str
    north_star: str
    metric: str
    campaign: str
    target_relative_lift: float
    guardrails: tuple[str, ...]


@dataclass(frozen=True)
class Touchpoint:
    id: str
    channel: str
    freshness_hours: float
    format: str = "parquet"  # parquet | csv: the export's files (a csv touchpoint also gets CSV copies)


@dataclass(frozen=True)
class FrequencyCap:
    per_days: int
    max: int


@dataclass(frozen=True)
class Campaign:
    id: str
    context: str
    segments: tuple[str, ...]
    touchpoints: tuple[str, ...]
    priority: int
    holdout: float
    frequency_cap: FrequencyCap


@dataclass(frozen=True)
class Stability:
    """A scoring's hysteresis (assets/stability.py): recompute `daily` or `weekly` (Mondays); a member stays
    at least `min_stay_days` as-of days in its group while still eligible; an RFM member leaves only when its
    R or F quintile is more than `leave_margin` away from its group's cells."""
    refresh: str = "daily"
    min_stay_days: int = 1
    leave_margin: int = 0


@dataclass(frozen=True)
class RfmScoring:
    """`segments.scored.rfm`: RFM quintiles over `window_days` (one of `segments.windows`)."""
    window_days: int
    groups: tuple[str, ...]
    min_size: int
    stability: Stability = Stability()


@dataclass(frozen=True)
class LifecycleScoring:
    """`segments.scored.lifecycle`: stages from tenure and days since the last activity (docs/segments.md)."""
    new_days: int
    active_days: int
    at_risk_days: int
    dormant_days: int
    stages: tuple[str, ...]
    min_size: int
    stability: Stability = Stability()


@dataclass(frozen=True)
class SegmentDefinition:
    id: str
    kind: str
    description: str
    owner: str
    rule: str  # "" for a scored segment
    min_size: int
    method: str = "rule"  # rule | rfm | lifecycle
    group: str = ""  # scored segments: the RFM group or the lifecycle stage
    scoring: RfmScoring | LifecycleScoring | None = None
    inputs: tuple[str, ...] = ()  # scored segments: the feature columns the scoring reads (rules: parse `rule`)


@dataclass(frozen=True)
class Segments:
    min_size: int
    windows: tuple[int, ...]
    definitions: tuple[SegmentDefinition, ...]  # every segment: the rule ones in map order, then the scored ones
    max_churn_share: float = 0.5
    rfm: RfmScoring | None = None
    lifecycle: LifecycleScoring | None = None

    @property
    def rule_definitions(self) -> tuple[SegmentDefinition, ...]:
        return tuple(d for d in self.definitions if d.method == "rule")


@dataclass(frozen=True)
class Actionable:
    pii: tuple[str, ...]
    consent_column: str
    dedup_lookback_days: int
    max_clock_skew_minutes: int
    currencies: tuple[str, ...]


@dataclass(frozen=True)
class Source:
    name: str
    path: str
    format: str
    columns: dict[str, str]


@dataclass(frozen=True)
class PyramidMap:
    path: Path
    program_name: str
    start_date: date
    run_at: tuple[int, int]  # (hour, minute) UTC
    north_star: NorthStar
    metrics: dict[str, Metric]
    goals: tuple[Goal, ...]
    touchpoints: tuple[Touchpoint, ...]
    campaigns: tuple[Campaign, ...]
    segments: Segments
    actionable: Actionable
    sources: dict[str, Source] = field(default_factory=dict)

    def campaign(self, campaign_id: str) -> Campaign:
        return next(c for c in self.campaigns if c.id == campaign_id)

    def touchpoint(self, touchpoint_id: str) -> Touchpoint:
        return next(t for t in self.touchpoints if t.id == touchpoint_id)


def default_map_path() -> Path:
    """`$PYRAMID_MAP`, or the project's pyramid.yaml."""
    return Path(os.environ.get("PYRAMID_MAP", DEFAULT_MAP_PATH))


def load_map(path: Path | str = DEFAULT_MAP_PATH) -> PyramidMap:
    """Load and check the map; raise MapError listing every problem found."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise MapError([f"{path}: cannot be read ({err.strerror})"]) from err
    try:
        lines = _key_lines(yaml.compose(text))
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise MapError([f"{path}: not valid YAML: {err}"]) from err
    reader = _Reader(path, lines)
    if not isinstance(raw, dict):
        raise MapError([f"{path}:1: the map must be a mapping of sections"])
    pyramid_map = reader.build(raw)
    reader.check_references(pyramid_map)
    if reader.problems:
        raise MapError(reader.problems)
    return pyramid_map


def _key_lines(node: yaml.Node | None, prefix: str = "", lines: dict[str, int] | None = None) -> dict[str, int]:
    """Map every key path (`campaigns[1].holdout`) to its 1-based line in the file."""
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            lines[key_path] = key_node.start_mark.line + 1
            _key_lines(value_node, key_path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            item_path = f"{prefix}[{index}]"
            lines[item_path] = item.start_mark.line + 1
            _key_lines(item, item_path, lines)
    return lines


class _Reader:
    """Turns the parsed YAML into dataclasses, collecting located problems instead of stopping."""

    def __init__(self, path: Path, lines: dict[str, int]):
        self.path = path
        self.lines = lines
        self.problems: list[str] = []

    def problem(self, key_path: str, message: str) -> None:
        line = self._line(key_path)
        self.problems.append(f"{self.path}:{line}: {key_path}: {message}")

    def _line(self, key_path: str) -> int:
        while key_path:
            if key_path in self.lines:
                return self.lines[key_path]
            key_path = key_path.rsplit(".", 1)[0] if "." in key_path else ""
        return 1

    def get(self, data: Any, key_path: str, key: str, kind: type | tuple, default: Any = ...) -> Any:
        full = f"{key_path}.{key}" if key_path else key
        if not isinstance(data, dict) or key not in data:
            if default is ...:
                self.problem(full, f"is required ({_kind_name(kind)})")
                return _fallback(kind)
            return default
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
            self.problem(full, f"must be {_kind_name(kind)}, got {value!r}")
            return _fallback(kind)
        return value

    def items(self, data: Any, key_path: str, key: str) -> list[tuple[str, dict]]:
        full = f"{key_path}.{key}" if key_path else key
        values = self.get(data, key_path, key, list, default=[])
        pairs = []
        for index, value in enumerate(values):
            if isinstance(value, dict):
                pairs.append((f"{full}[{index}]", value))
            else:
                self.problem(f"{full}[{index}]", f"must be a mapping, got {value!r}")
        return pairs

    def build(self, raw: dict) -> PyramidMap:
        program = self.get(raw, "", "program", dict, default={})
        schedule = self.get(raw, "", "schedule", dict)
        start = self.get(schedule, "schedule", "start_date", str, default="")
        try:
            start_date = date.fromisoformat(start)
        except ValueError:
            self.problem("schedule.start_date", f"must be a date YYYY-MM-DD, got {start!r}")
            start_date = date(2000, 1, 1)
        ns = self.get(raw, "", "north_star", dict)
        return PyramidMap(
            path=self.path,
            program_name=self.get(program, "program", "name", str, default="personalization program"),
            start_date=start_date,
            run_at=self._run_at(schedule),
            north_star=NorthStar(
                id=self.get(ns, "north_star", "id", str),
                description=self.get(ns, "north_star", "description", str, default=""),
                metric=self.get(ns, "north_star", "metric", str),
            ),
            metrics=self._metrics(raw),
            goals=tuple(self._goal(p, g) for p, g in self.items(raw, "", "goals")),
            touchpoints=tuple(self._touchpoint(p, t) for p, t in self.items(raw, "", "touchpoints")),
            campaigns=tuple(self._campaign(p, c) for p, c in self.items(raw, "", "campaigns")),
            segments=self._segments(raw),
            actionable=self._actionable(raw),
            sources=self._sources(raw),
        )

    def _run_at(self, schedule: dict) -> tuple[int, int]:
        text = self.get(schedule, "schedule", "run_at", str, default="03:00")
        hour, _, minute = text.partition(":")
        if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
            self.problem("schedule.run_at", f"must be a UTC time HH:MM, got {text!r}")
            return (3, 0)
        return (int(hour), int(minute))

    def _metrics(self, raw: dict) -> dict[str, Metric]:
        metrics = {}
        for metric_id, spec in self.get(raw, "", "metrics", dict).items():
            key_path = f"metrics.{metric_id}"
            metrics[metric_id] = Metric(
                id=metric_id,
                description=self.get(spec, key_path, "description", str, default=""),
                window_days=self.get(spec, key_path, "window_days", int, default=1),
                condition=self.get(spec, key_path, "condition", str),
            )
            if metrics[metric_id].window_days < 1:
                self.problem(f"{key_path}.window_days", "must be at least 1")
        return metrics

    def _goal(self, key_path: str, spec: dict) -> Goal:
        target = self.get(spec, key_path, "target", dict)
        return Goal(
            id=self.get(spec, key_path, "id", str),
            north_star=self.get(spec, key_path, "north_star", str),
            metric=self.get(spec, key_path, "metric", str),
            campaign=self.get(spec, key_path, "campaign", str),
            target_relative_lift=self.get(target, f"{key_path}.target", "relative_lift", float),
            guardrails=tuple(self.get(spec, key_path, "guardrails", list, default=[])),
        )

    def _touchpoint(self, key_path: str, spec: dict) -> Touchpoint:
        return Touchpoint(
            id=self.get(spec, key_path, "id", str),
            channel=self.get(spec, key_path, "channel", str),
            freshness_hours=self.get(spec, key_path, "freshness_hours", float),
            format=self.get(spec, key_path, "format", str, default="parquet"),
        )

    def _campaign(self, key_path: str, spec: dict) -> Campaign:
        cap = self.get(spec, key_path, "frequency_cap", dict, default={"per_days": 1, "max": 1})
        campaign = Campaign(
            id=self.get(spec, key_path, "id", str),
            context=self.get(spec, key_path, "context", str, default=""),
            segments=tuple(self.get(spec, key_path, "segments", list)),
            touchpoints=tuple(self.get(spec, key_path, "touchpoints", list)),
            priority=self.get(spec, key_path, "priority", int, default=0),
            holdout=self.get(spec, key_path, "holdout", float),
            frequency_cap=FrequencyCap(
                per_days=self.get(cap, f"{key_path}.frequency_cap", "per_days", int),
                max=self.get(cap, f"{key_path}.frequency_cap", "max", int),
            ),
        )
        if not 0 < campaign.holdout < 1:
            self.problem(f"{key_path}.holdout", f"must be a share between 0 and 1 (exclusive), got {campaign.holdout}")
        if campaign.frequency_cap.per_days < 1 or campaign.frequency_cap.max < 1:
            self.problem(f"{key_path}.frequency_cap", "per_days and max must be at least 1")
        return campaign

    def _segments(self, raw: dict) -> Segments:
        spec = self.get(raw, "", "segments", dict)
        min_size = self.get(spec, "segments", "min_size", int, default=10000)
        windows = tuple(self.get(spec, "segments", "windows", list, default=[7, 30, 90]))
        if not windows or not all(isinstance(w, int) and w > 0 for w in windows):
            self.problem("segments.windows", f"must be a list of positive day counts, got {list(windows)}")
            windows = (7, 30, 90)
        definitions = []
        for key_path, seg in self.items(spec, "segments", "definitions"):
            definitions.append(SegmentDefinition(
                id=self.get(seg, key_path, "id", str),
                kind=self.get(seg, key_path, "kind", str),
                description=self.get(seg, key_path, "description", str, default=""),
                owner=self.get(seg, key_path, "owner", str, default=""),
                rule=self.get(seg, key_path, "rule", str),
                min_size=self.get(seg, key_path, "min_size", int, default=min_size),
            ))
            if definitions[-1].kind not in SEGMENT_KINDS:
                self.problem(f"{key_path}.kind", f"must be one of {', '.join(SEGMENT_KINDS)}, got {definitions[-1].kind!r}")
        max_churn_share = self.get(spec, "segments", "max_churn_share", float, default=0.5)
        if not max_churn_share > 0:
            self.problem("segments.max_churn_share", f"must be a share above 0, got {max_churn_share}")
        scored = self.get(spec, "segments", "scored", dict, default={}) or {}
        for key in scored:
            if key not in ("rfm", "lifecycle"):
                self.problem(f"segments.scored.{key}", "unknown scoring; allowed: rfm, lifecycle")
        rfm = self._rfm(scored, windows, min_size) if "rfm" in scored else None
        lifecycle = self._lifecycle(scored, windows, min_size) if "lifecycle" in scored else None
        if rfm is not None:
            definitions += [SegmentDefinition(
                id=f"rfm_{group}", kind="value", owner="", rule="", min_size=rfm.min_size, method="rfm",
                group=group, scoring=rfm, inputs=("consent_personalization", "last_txn_at",
                                                  *(f"{c}_{rfm.window_days}d" for c in ("txns", "balance_in", "balance_out"))),
                description=f"RFM group {group.replace('_', ' ')} (recency, frequency, monetary over {rfm.window_days} days).",
            ) for group in rfm.groups]
        if lifecycle is not None:
            definitions += [SegmentDefinition(
                id=f"lifecycle_{stage}", kind="behavioral", owner="", rule="", min_size=lifecycle.min_size,
                method="lifecycle", group=stage, scoring=lifecycle,
                inputs=("consent_personalization", "tenure_days", "days_since_last_seen", "last_txn_at"),
                description=f"Lifecycle stage {stage.replace('_', ' ')}.",
            ) for stage in lifecycle.stages]
        return Segments(min_size=min_size, windows=windows, definitions=tuple(definitions),
                        max_churn_share=max_churn_share, rfm=rfm, lifecycle=lifecycle)

    def _names(self, spec: dict, key_path: str, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(self.get(spec, key_path, key, list, default=list(allowed)))
        for name in names:
            if name not in allowed:
                self.problem(f"{key_path}.{key}", f"unknown name {name!r}; allowed: {', '.join(allowed)}")
        if len(set(names)) != len(names):
            self.problem(f"{key_path}.{key}", "lists a name twice")
        return tuple(n for n in dict.fromkeys(names) if n in allowed)

    def _rfm(self, scored: dict, windows: tuple[int, ...], min_size: int) -> RfmScoring:
        key_path = "segments.scored.rfm"
        spec = self.get(scored, "segments.scored", "rfm", dict)
        rfm = RfmScoring(
            window_days=self.get(spec, key_path, "window_days", int, default=max(windows)),
            groups=self._names(spec, key_path, "groups", RFM_GROUPS),
            min_size=self.get(spec, key_path, "min_size", int, default=min_size),
            stability=self._stability(spec, key_path),
        )
        if rfm.window_days not in windows:
            self.problem(f"{key_path}.window_days", f"must be one of segments.windows {list(windows)}, got {rfm.window_days}")
        return rfm

    def _stability(self, spec: dict, key_path: str) -> Stability:
        stability = Stability(refresh=self.get(spec, key_path, "refresh", str, default="daily"),
                              min_stay_days=self.get(spec, key_path, "min_stay_days", int, default=1),
                              leave_margin=self.get(spec, key_path, "leave_margin", int, default=0))
        if stability.refresh not in ("daily", "weekly"):
            self.problem(f"{key_path}.refresh", f"must be daily or weekly, got {stability.refresh!r}")
        if stability.min_stay_days < 1:
            self.problem(f"{key_path}.min_stay_days", f"must be at least 1, got {stability.min_stay_days}")
        return stability

    def _lifecycle(self, scored: dict, windows: tuple[int, ...], min_size: int) -> LifecycleScoring:
        key_path = "segments.scored.lifecycle"
        spec = self.get(scored, "segments.scored", "lifecycle", dict)
        days = {key: self.get(spec, key_path, key, int, default=default) for key, default in
                (("new_days", 30), ("active_days", 7), ("at_risk_days", 30), ("dormant_days", max(windows)))}
        lifecycle = LifecycleScoring(**days, stages=self._names(spec, key_path, "stages", LIFECYCLE_STAGES),
                                     min_size=self.get(spec, key_path, "min_size", int, default=min_size),
                                     stability=self._stability(spec, key_path))
        if not 0 < lifecycle.active_days <= lifecycle.at_risk_days <= lifecycle.dormant_days:
            self.problem(key_path, "needs 0 < active_days <= at_risk_days <= dormant_days, got "
                         f"{lifecycle.active_days}, {lifecycle.at_risk_days}, {lifecycle.dormant_days}")
        if lifecycle.dormant_days > max(windows):
            self.problem(f"{key_path}.dormant_days", f"must be at most the largest window ({max(windows)} days): "
                         "days since the last activity are known only within it")
        if lifecycle.new_days < 0:
            self.problem(f"{key_path}.new_days", "must be at least 0")
        return lifecycle

    def _actionable(self, raw: dict) -> Actionable:
        spec = self.get(raw, "", "actionable", dict)
        return Actionable(
            pii=tuple(self.get(spec, "actionable", "pii", list, default=[])),
            consent_column=self.get(spec, "actionable", "consent_column", str, default="consent_personalization"),
            dedup_lookback_days=self.get(spec, "actionable", "dedup_lookback_days", int, default=7),
            max_clock_skew_minutes=self.get(spec, "actionable", "max_clock_skew_minutes", int, default=5),
            currencies=tuple(self.get(spec, "actionable", "currencies", list)),
        )

    def _sources(self, raw: dict) -> dict[str, Source]:
        spec = self.get(raw, "", "sources", dict)
        sources = {}
        for name in SOURCE_NAMES:
            key_path = f"sources.{name}"
            src = self.get(spec, "sources", name, dict)
            sources[name] = Source(
                name=name,
                path=self.get(src, key_path, "path", str, default=""),
                format=self.get(src, key_path, "format", str, default="csv"),
                columns=self.get(src, key_path, "columns", dict, default={}) or {},
            )
            if sources[name].format not in SOURCE_FORMATS:
                self.problem(f"{key_path}.format", f"must be one of {', '.join(SOURCE_FORMATS)}")
            if "{ds}" not in sources[name].path:
                self.problem(f"{key_path}.path", "must contain {ds}, the landing day folder")
        return sources

    def check_references(self, m: PyramidMap) -> None:
        """Every id unique, every reference resolving, every expression safe."""
        self._unique("goals", [g.id for g in m.goals])
        self._unique("touchpoints", [t.id for t in m.touchpoints])
        self._unique("campaigns", [c.id for c in m.campaigns])
        self._unique("segments.definitions", [s.id for s in m.segments.definitions])
        metric_ids = sorted(m.metrics)
        campaign_ids = [c.id for c in m.campaigns]
        segment_ids = [s.id for s in m.segments.definitions]
        touchpoint_ids = [t.id for t in m.touchpoints]
        if m.north_star.metric not in m.metrics:
            self.problem("north_star.metric", f"unknown metric {m.north_star.metric!r}; defined: {', '.join(metric_ids)}")
        for i, goal in enumerate(m.goals):
            key_path = f"goals[{i}]"
            if goal.north_star != m.north_star.id:
                self.problem(f"{key_path}.north_star", f"must be the North Star's id {m.north_star.id!r}")
            if goal.metric not in m.metrics:
                self.problem(f"{key_path}.metric", f"unknown metric {goal.metric!r}; defined: {', '.join(metric_ids)}")
            if goal.campaign not in campaign_ids:
                self.problem(f"{key_path}.campaign", f"unknown campaign {goal.campaign!r}; defined: {', '.join(campaign_ids)}")
            for guardrail in goal.guardrails:
                if guardrail not in m.metrics:
                    self.problem(f"{key_path}.guardrails", f"unknown metric {guardrail!r}; defined: {', '.join(metric_ids)}")
        for i, campaign in enumerate(m.campaigns):
            for seg in campaign.segments:
                if seg not in segment_ids:
                    self.problem(f"campaigns[{i}].segments", f"unknown segment {seg!r}; defined: {', '.join(segment_ids)}")
            for tp in campaign.touchpoints:
                if tp not in touchpoint_ids:
                    self.problem(f"campaigns[{i}].touchpoints", f"unknown touchpoint {tp!r}; defined: {', '.join(touchpoint_ids)}")
        features = feature_column_names(list(m.segments.windows))
        for i, seg in enumerate(m.segments.definitions):
            if seg.method != "rule":
                continue
            for problem in check_condition(seg.rule, features):
                self.problem(f"segments.definitions[{i}].rule", f"segment {seg.id!r}: {problem}; "
                             "rules may use the feature columns listed in docs/contracts.md")
        daily = [*DAILY_COUNTS, *DAILY_AMOUNTS]
        for metric in m.metrics.values():
            for problem in check_condition(metric.condition, daily):
                self.problem(f"metrics.{metric.id}.condition", f"{problem}; conditions may use: {', '.join(daily)}")

    def _unique(self, key_path: str, ids: list[str]) -> None:
        seen = set()
        for index, item in enumerate(ids):
            if item in seen:
                self.problem(f"{key_path}[{index}].id", f"duplicate id {item!r}")
            seen.add(item)


def _kind_name(kind: type | tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a mapping"}
    return names.get(kind, str(kind)) if not isinstance(kind, tuple) else " or ".join(names.get(k, str(k)) for k in kind)


def _fallback(kind: type | tuple) -> Any:
    return {str: "", int: 0, float: 0.0, list: [], dict: {}}.get(kind, None)
