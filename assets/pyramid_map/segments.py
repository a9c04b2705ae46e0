"""The map's `segments` section: rule segments, the RFM and lifecycle scorings, and the segments they yield.

Defaults that depend on another key of the section (a definition's or a scoring's `min_size`, a scoring's
longest days) are filled in by `Segments` before its fields are validated; the scorings are checked
against `windows` on the map's own values, so those problems are reported next to any other.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AliasPath,
    BeforeValidator,
    Field,
    StrictInt,
    StrictStr,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from assets.pyramid_map.validation import CONFIG, Float, Problem, fail, mapping_problems, validated

SegmentKind = Literal["behavioral", "demographic", "intent", "value"]
SegmentMethod = Literal["rule", "rfm", "lifecycle"]
# Scored segments (docs/segments.md): the standard RFM groups and the lifecycle stages. Each becomes a
# segment `rfm_<group>` (kind value) or `lifecycle_<stage>` (kind behavioral).
RfmGroup = Literal[
    "champions",
    "loyal",
    "potential_loyalists",
    "new",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cannot_lose_them",
    "hibernating",
    "lost",
]
LifecycleStage = Literal["new", "active", "at_risk", "dormant", "churned"]
SEGMENT_KINDS: tuple[str, ...] = get_args(SegmentKind)
SEGMENT_METHODS: tuple[str, ...] = get_args(SegmentMethod)
RFM_GROUPS: tuple[str, ...] = get_args(RfmGroup)
LIFECYCLE_STAGES: tuple[str, ...] = get_args(LifecycleStage)
SCORINGS = ("rfm", "lifecycle")
_DERIVED = ("method", "group", "scoring", "inputs")  # a scored segment's fields, derived from its scoring


def _names(names: Any, allowed: tuple[str, ...]) -> Any:
    """A list of names from `allowed`, none twice (checked before the Literal type, for these messages)."""
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        problems: list[Problem] = [
            ((), f"unknown name {n!r}; allowed: {', '.join(allowed)}") for n in names if n not in allowed
        ]
        if len(set(names)) != len(names):
            problems.append(((), "lists a name twice"))
        fail("names", problems)
    return names


@dataclass(frozen=True, config=CONFIG)
class Stability:
    """A scoring's hysteresis (assets/stability.py): regroup `daily` or `weekly` (Mondays); a member stays at
    least `min_stay_days` as-of days in its group while still eligible; an RFM member leaves only when its R or
    F quintile is more than `leave_margin` away from its group's cells."""

    refresh: Literal["daily", "weekly"] = "daily"
    min_stay_days: Annotated[StrictInt, Field(ge=1)] = 1
    leave_margin: Annotated[StrictInt, Field(ge=0)] = 0


@dataclass(frozen=True, config=CONFIG)
class RfmScoring:
    """`segments.scored.rfm`: RFM quintiles over `window_days` (one of `segments.windows`)."""

    window_days: StrictInt
    groups: Annotated[tuple[RfmGroup, ...], BeforeValidator(lambda names: _names(names, RFM_GROUPS))] = RFM_GROUPS
    min_size: StrictInt = Field()
    stability: Stability = Stability()
    # the features scored: a latest time feature (days since it), a windowed count, windowed amounts (summed)
    recency: StrictStr = "last_txn_at"
    frequency: StrictStr = "txns"
    monetary: tuple[StrictStr, ...] = ("balance_in", "balance_out")


@dataclass(frozen=True, config=CONFIG)
class LifecycleScoring:
    """`segments.scored.lifecycle`: stages from tenure and days since the last activity (docs/segments.md)."""

    new_days: StrictInt = 30
    active_days: StrictInt = 7
    at_risk_days: StrictInt = 30
    dormant_days: StrictInt = Field()
    stages: Annotated[tuple[LifecycleStage, ...], BeforeValidator(lambda names: _names(names, LIFECYCLE_STAGES))] = (
        LIFECYCLE_STAGES
    )
    min_size: StrictInt = Field()
    stability: Stability = Stability()

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleScoring:
        problems: list[Problem] = []
        if not 0 < self.active_days <= self.at_risk_days <= self.dormant_days:
            problems.append(
                (
                    (),
                    "needs 0 < active_days <= at_risk_days <= dormant_days, got "
                    f"{self.active_days}, {self.at_risk_days}, {self.dormant_days}",
                )
            )
        if self.new_days < 0:
            problems.append((("new_days",), "must be at least 0"))
        fail("LifecycleScoring", problems)
        return self


@dataclass(frozen=True, config=CONFIG)
class SegmentDefinition:
    id: StrictStr
    kind: SegmentKind
    description: StrictStr = ""
    owner: StrictStr = ""
    rule: StrictStr = Field()  # "" for a scored segment
    min_size: StrictInt = Field()
    method: SegmentMethod = "rule"
    group: StrictStr = ""  # scored segments: the RFM group or the lifecycle stage
    scoring: RfmScoring | LifecycleScoring | None = None
    inputs: tuple[StrictStr, ...] = ()  # scored segments: the feature columns the scoring reads (rules: parse `rule`)


@dataclass(frozen=True, config=CONFIG)
class Segments:
    min_size: StrictInt = 10000
    windows: tuple[StrictInt, ...] = (7, 30, 90)
    definitions: tuple[SegmentDefinition, ...] = ()  # every segment: the rule ones in map order, then the scored ones
    max_churn_share: Float = 0.5
    rfm: RfmScoring | None = Field(None, validation_alias=AliasPath("scored", "rfm"))
    lifecycle: LifecycleScoring | None = Field(None, validation_alias=AliasPath("scored", "lifecycle"))

    @property
    def rule_definitions(self) -> tuple[SegmentDefinition, ...]:
        return tuple(d for d in self.definitions if d.method == "rule")

    @field_validator("windows")
    @classmethod
    def _positive_windows(cls, windows: tuple[int, ...]) -> tuple[int, ...]:
        if not _positive_days(windows):
            raise ValueError(f"must be a list of positive day counts, got {list(windows)}")
        return windows

    @field_validator("max_churn_share")
    @classmethod
    def _positive_share(cls, share: float) -> float:
        if not share > 0:
            raise ValueError(f"must be a share above 0, got {share}")
        return share

    @model_validator(mode="wrap")
    @classmethod
    def _section(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Segments:
        """The map's section: defaults filled in, the scorings checked against the windows, scored segments added."""
        if not isinstance(data, dict):  # a constructor call: the definitions are given in full
            return handler(data)
        data = _with_defaults(
            data, cls.__pydantic_fields__["min_size"].default, cls.__pydantic_fields__["windows"].default
        )
        segments = validated("Segments", data, handler, mapping_problems(data, ("scored",)) + _scoring_problems(data))
        scored = (*_rfm_segments(segments.rfm), *_lifecycle_segments(segments.lifecycle))
        # Derived once, from the validated scorings; the model is frozen, hence object.__setattr__.
        object.__setattr__(segments, "definitions", (*segments.definitions, *scored))
        return segments


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_days(windows: Any) -> bool:
    return isinstance(windows, (list, tuple)) and bool(windows) and all(_is_int(w) and w > 0 for w in windows)


def _with_defaults(data: dict, default_min_size: int, default_windows: tuple[int, ...]) -> dict:
    """A definition's and a scoring's `min_size` default to the section's; a scoring's days to the longest window.

    Where the section's own value is invalid (reported as such), its default stands in. A definition's
    derived fields (`method`, ...) are not the map's to set.
    """
    data = {"min_size": default_min_size, "windows": default_windows, **data}
    min_size = data["min_size"] if _is_int(data["min_size"]) else default_min_size
    longest = max(data["windows"] if _positive_days(data["windows"]) else default_windows)
    if isinstance(data.get("scored"), dict):
        days = {"rfm": {"window_days": longest}, "lifecycle": {"dormant_days": longest}}
        data["scored"] = {
            key: {**days[key], "min_size": min_size, **spec} if key in days and isinstance(spec, dict) else spec
            for key, spec in data["scored"].items()
        }
    if isinstance(data.get("definitions"), list):
        data["definitions"] = [
            {"min_size": min_size, **{k: v for k, v in d.items() if k not in _DERIVED}} if isinstance(d, dict) else d
            for d in data["definitions"]
        ]
    return data


def _scoring_problems(data: dict) -> list[Problem]:
    """Unknown scorings, and scoring days outside the windows (on the map's values, valid or not elsewhere)."""
    scored, windows = data.get("scored"), data["windows"]
    if not isinstance(scored, dict):
        return []
    problems: list[Problem] = [
        (("scored", key), f"unknown scoring; allowed: {', '.join(SCORINGS)}") for key in scored if key not in SCORINGS
    ]
    if not _positive_days(windows):
        return problems
    rfm_days = scored.get("rfm", {}).get("window_days") if isinstance(scored.get("rfm"), dict) else None
    if _is_int(rfm_days) and rfm_days not in windows:
        problems.append(
            (("scored", "rfm", "window_days"), f"must be one of segments.windows {list(windows)}, got {rfm_days}")
        )
    dormant = scored.get("lifecycle", {}).get("dormant_days") if isinstance(scored.get("lifecycle"), dict) else None
    if _is_int(dormant) and dormant > max(windows):
        problems.append(
            (
                ("scored", "lifecycle", "dormant_days"),
                f"must be at most the largest window "
                f"({max(windows)} days): days since the last activity are known only within it",
            )
        )
    return problems


def _rfm_segments(rfm: RfmScoring | None) -> list[SegmentDefinition]:
    if rfm is None:
        return []
    amounts = tuple(f"{c}_{rfm.window_days}d" for c in (rfm.frequency, *rfm.monetary))
    return [
        SegmentDefinition(
            id=f"rfm_{group}",
            kind="value",
            owner="",
            rule="",
            min_size=rfm.min_size,
            method="rfm",
            group=group,
            scoring=rfm,
            inputs=("consent_personalization", rfm.recency, *amounts),
            description=f"RFM group {group.replace('_', ' ')} (recency, frequency, monetary over {rfm.window_days} days).",  # noqa: E501
        )
        for group in rfm.groups
    ]


def _lifecycle_segments(lifecycle: LifecycleScoring | None) -> list[SegmentDefinition]:
    if lifecycle is None:
        return []
    return [
        SegmentDefinition(
            id=f"lifecycle_{stage}",
            kind="behavioral",
            owner="",
            rule="",
            min_size=lifecycle.min_size,
            method="lifecycle",
            group=stage,
            scoring=lifecycle,
            inputs=("consent_personalization", "tenure_days", "days_since_last_seen", "last_txn_at"),
            description=f"Lifecycle stage {stage.replace('_', ' ')}.",
        )
        for stage in lifecycle.stages
    ]
