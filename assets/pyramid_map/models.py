"""The map's typed models: one frozen pydantic dataclass per part of `pyramid.yaml` (`segments` in segments.py).

Field defaults are the map's defaults and validators hold its checks. A field that follows one with a
default is marked required with `Field()` (dataclass order is the positional order callers use). A key
the map spells differently is read through `validation_alias`, so error locations are the map's key
paths. The references between sections are checked once the whole map is valid (references.py).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasPath,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from assets.pyramid_map.kinds import KIND_EXPRESSIONS, METRIC_KINDS, Direction, MetricKind
from assets.pyramid_map.measures import Features, Measure
from assets.pyramid_map.references import reference_problems
from assets.pyramid_map.segments import Segments
from assets.pyramid_map.sources import ACTIVITY_SOURCES, SOURCE_NAMES, Source
from assets.pyramid_map.validation import CONFIG, Float, Problem, fail, mapping_problems, validated


@dataclass(frozen=True, config=CONFIG)
class NorthStar:
    id: StrictStr
    description: StrictStr = ""
    metric: StrictStr = Field()


@dataclass(frozen=True, config=CONFIG)
class Metric:
    """A map metric (docs/statistics.md): `share` of users whose window sums meet `condition`; `ratio` of the
    summed `numerator` to the summed `denominator`; `mean` of a per-user `value`. `direction` says which way is
    better: a goal's default is increase (decrease for `time_to_event`: days to the event, restricted to
    `horizon_days` after the `anchor`); a guardrail without one must not rise (the historic reading)."""

    id: StrictStr
    description: StrictStr = ""
    window_days: StrictInt = 1
    condition: StrictStr = ""  # share: a boolean SQL condition over the window's sums; time_to_event: the event
    kind: MetricKind = "share"
    direction: Direction | None = None
    numerator: StrictStr = ""  # ratio: SQL expressions over the window's sums
    denominator: StrictStr = ""
    value: StrictStr = ""  # mean: a SQL expression over the window's sums
    touchpoint: StrictStr = ""  # ratio, mean: count only events at this touchpoint (its per-touchpoint counts)
    # time_to_event (assets/time_to_event.py): days from the anchor to the first day `condition` holds, compared
    # by restricted mean time to event up to horizon_days
    anchor: Literal["signup", "first_exposure"] = "signup"
    horizon_days: StrictInt = 14

    @field_validator("window_days", "horizon_days")
    @classmethod
    def _positive(cls, days: int) -> int:
        if days < 1:
            raise ValueError("must be at least 1")
        return days

    @model_validator(mode="wrap")
    @classmethod
    def _kind_fields(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Metric:
        return validated("Metric", data, handler, _kind_problems(data))

    def expressions(self) -> tuple[str, ...]:
        """The SQL expressions the metric is computed from."""
        return tuple(getattr(self, name) for name in KIND_EXPRESSIONS[self.kind])

    def goal_direction(self) -> str:
        """The direction in which the metric improves: declared, else decrease for a time to event."""
        return self.direction or ("decrease" if self.kind == "time_to_event" else "increase")

    def guardrail_direction(self) -> str:
        return self.direction or "decrease"


def _kind_problems(data: Any) -> list[Problem]:
    """Each kind's expressions are required, other kinds' expressions are refused; `touchpoint` needs a count."""
    if not isinstance(data, dict) or data.get("kind", "share") not in METRIC_KINDS:
        return []
    kind = data.get("kind", "share")
    problems: list[Problem] = [
        ((name,), f"is required for a {kind} metric (a SQL expression over the daily aggregate columns)")
        for name in KIND_EXPRESSIONS[kind]
        if not data.get(name)
    ]
    problems += [
        (
            (name,),
            f"belongs to a {other} metric, not a {kind} one; a {kind} metric declares "
            f"{', '.join(KIND_EXPRESSIONS[kind]) or 'its own fields'}",
        )
        for other, names in KIND_EXPRESSIONS.items()
        if other != kind
        for name in names
        if name not in KIND_EXPRESSIONS[kind] and data.get(name)
    ]
    if data.get("touchpoint") and kind not in ("ratio", "mean"):
        problems.append((("touchpoint",), f"applies to ratio and mean metrics only, not to a {kind} metric"))
    return problems


DEFAULT_GUARDRAIL_MARGIN = 0.10  # a guardrail's metric may rise by at most 10% relative unless the map says otherwise


@dataclass(frozen=True, config=CONFIG)
class Goal:
    id: StrictStr
    north_star: StrictStr
    metric: StrictStr
    campaign: StrictStr
    target_relative_lift: Float = Field(validation_alias=AliasPath("target", "relative_lift"))
    guardrails: tuple[StrictStr, ...] = ()  # metric ids; the map may spell one {metric: id, max_relative_rise: x}
    guardrail_margins: dict[StrictStr, Float] = Field(default_factory=dict, repr=False)  # declared margins only

    def guardrail_margin(self, metric_id: str) -> float:
        """The non-inferiority margin of a guardrail: the largest relative rise of its metric that is `ok`."""
        return self.guardrail_margins.get(metric_id, DEFAULT_GUARDRAIL_MARGIN)

    @model_validator(mode="wrap")
    @classmethod
    def _target_mapping(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Goal:
        data, problems = _guardrail_specs(data)
        return validated("Goal", data, handler, mapping_problems(data, ("target",)) + problems)


def _guardrail_specs(data: Any) -> tuple[Any, list[Problem]]:
    """`guardrails` entries `{metric, max_relative_rise}` split into the metric ids and `guardrail_margins`."""
    if not isinstance(data, dict) or not isinstance(data.get("guardrails"), list):
        return data, []
    ids, margins, problems = [], {}, []
    for i, entry in enumerate(data["guardrails"]):
        if not isinstance(entry, dict):
            ids.append(entry)
            continue
        ids.append(entry.get("metric"))
        margin = entry.get("max_relative_rise", DEFAULT_GUARDRAIL_MARGIN)
        if "metric" not in entry:
            problems.append((("guardrails", i, "metric"), "is required (a metric id)"))
        if isinstance(margin, bool) or not isinstance(margin, int | float) or margin < 0:
            problems.append((("guardrails", i, "max_relative_rise"), f"must be a number >= 0, got {margin!r}"))
        elif isinstance(entry.get("metric"), str):
            margins[entry["metric"]] = float(margin)
    return {**data, "guardrails": [i for i in ids if i is not None], "guardrail_margins": margins}, problems


@dataclass(frozen=True, config=CONFIG)
class Touchpoint:
    id: StrictStr
    channel: StrictStr
    freshness_hours: Float
    format: Literal["parquet", "csv"] = "parquet"  # the export's files (a csv touchpoint also gets CSV copies)


@dataclass(frozen=True, config=CONFIG)
class FrequencyCap:
    per_days: StrictInt
    max: StrictInt

    @model_validator(mode="after")
    def _positive(self) -> FrequencyCap:
        if self.per_days < 1 or self.max < 1:
            raise ValueError("per_days and max must be at least 1")
        return self


@dataclass(frozen=True, config=CONFIG)
class Context:
    """When a campaign applies to a user on a day: `when` is a condition over the user's features and the
    serving day's calendar (assets/campaigns.py, CONTEXT_CALENDAR); the description says it in words."""

    id: StrictStr
    description: StrictStr = ""
    when: StrictStr = Field()


@dataclass(frozen=True, config=CONFIG)
class Campaign:
    id: StrictStr
    context: StrictStr = ""  # in words; `contexts` decide (none declared: the segments alone decide)
    segments: tuple[StrictStr, ...] = Field()
    touchpoints: tuple[StrictStr, ...] = Field()
    priority: StrictInt = 0
    holdout: Float = Field()
    frequency_cap: FrequencyCap = FrequencyCap(per_days=1, max=1)
    # the planned horizon: goal rows say `running` before `start`, before `end` and below `planned_users`
    start: Annotated[date | None, BeforeValidator(lambda v: v if v is None else _start_date(v))] = None
    end: Annotated[date | None, BeforeValidator(lambda v: v if v is None else _start_date(v))] = None
    planned_users: StrictInt | None = None
    contexts: tuple[Context, ...] = ()
    # false: an A/A test, nobody treated (holdouts still by hash, no exports; goal rows `aa_ok` / `aa_failed`)
    treated: StrictBool = Field(True, repr=False)

    @field_validator("holdout")
    @classmethod
    def _share(cls, holdout: float) -> float:
        if not 0 < holdout < 1:
            raise ValueError(f"must be a share between 0 and 1 (exclusive), got {holdout}")
        return holdout


ConsentValue = Literal["granted", "denied"]


@dataclass(frozen=True, config=CONFIG)
class ConsentDefault:
    """`actionable.consent_default`: the consent of every user when the map declares no profiles (a privacy
    decision, recorded as such: assets/first_seen.py); `basis` says why it may be assumed."""

    personalization: ConsentValue = Field()
    marketing: ConsentValue = Field()
    basis: StrictStr = Field()

    @field_validator("basis")
    @classmethod
    def _stated(cls, basis: str) -> str:
        if not basis.strip():
            raise ValueError("is required: why this consent may be assumed (a contract clause, a legal basis)")
        return basis


@dataclass(frozen=True, config=CONFIG)
class Actionable:
    pii: tuple[StrictStr, ...] = ()
    consent_column: StrictStr = "consent_personalization"
    dedup_lookback_days: StrictInt = 7
    max_clock_skew_minutes: StrictInt = 5
    currencies: tuple[StrictStr, ...] = Field()
    # the accepted codes; None: the suite's own set (expectations/<source>.json)
    txn_types: tuple[StrictStr, ...] | None = Field(None, repr=False)
    event_types: tuple[StrictStr, ...] | None = Field(None, repr=False)
    zero_amounts: StrictBool = Field(False, repr=False)  # true: an amount of 0 (a free item) is accepted
    consent_default: ConsentDefault | None = Field(None, repr=False)  # required without profiles, refused with them

    def suite_changes(self, source: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The map's domain rules that replace its suite's (assets/quality/suites.py `with_kwargs`): the accepted
        codes of `source`'s coded columns, and whether a transaction's amount may be 0."""
        in_set = "expect_column_values_to_be_in_set"
        sets = {
            "transactions": {"currency": self.currencies, "txn_type": self.txn_types},
            "events": {"event_type": self.event_types},
        }.get(source, {})
        changes = {(in_set, column): {"value_set": list(v)} for column, v in sets.items() if v is not None}
        if source == "transactions" and self.zero_amounts:
            changes[("expect_column_values_to_be_between", "amount")] = {"strict_min": False}
        return changes


def consent_default_problems(m: PyramidMap) -> list[Problem]:
    """Without profiles, consent comes from `actionable.consent_default` (never silently true); with them,
    from the profiles alone."""
    declared = m.actionable.consent_default is not None
    if "profiles" not in m.sources and not declared:
        return [
            (
                ("actionable", "consent_default"),
                "is required when sources.profiles is left out: declare {personalization: granted|denied, "
                "marketing: granted|denied, basis: why}; consent is never assumed",
            )
        ]
    if "profiles" in m.sources and declared:
        return [
            (
                ("actionable", "consent_default"),
                "applies only when sources.profiles is left out: the profiles carry each user's consent",
            )
        ]
    return []


@dataclass(frozen=True, config=CONFIG)
class OptOut:
    """Events of `event_type` opt their user out of the event's channel (assets/suppression.py); "" declares none."""

    event_type: StrictStr = ""


@dataclass(frozen=True, config=CONFIG)
class Consent:
    """Channel consent: the profiles column of marketing consent, the channels it gates, what an opt-out is."""

    marketing_column: StrictStr = "consent_marketing"
    marketing_channels: tuple[StrictStr, ...] = ()
    opt_out: OptOut = OptOut()


def _start_date(value: Any) -> Any:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"must be a date YYYY-MM-DD, got {value!r}") from None


def _run_at(value: Any) -> Any:
    if isinstance(value, tuple):
        return value
    hour, _, minute = value.partition(":") if isinstance(value, str) else ("", "", "")
    if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
        raise ValueError(f"must be a UTC time HH:MM, got {value!r}")
    return (int(hour), int(minute))


def _keyed(specs: Any, key: str) -> Any:
    """A mapping of specs by id: each spec gets its key as `key` (`metrics.<id>` -> Metric.id)."""
    if not isinstance(specs, dict):
        return specs
    return {k: {**v, key: k} if isinstance(v, dict) else v for k, v in specs.items()}


def _every_source(specs: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """`sources`: the declared ones of SOURCE_NAMES, in that order, named by their key; other keys are ignored.
    Events or transactions (or both) are required; a source left out lands nothing (docs/contracts.md)."""
    if not isinstance(specs, dict):
        return handler(specs)
    missing: list[Problem] = []
    if not any(name in specs for name in ACTIVITY_SOURCES):
        missing = [((name,), "is required (a mapping) unless the other is declared") for name in ACTIVITY_SOURCES]
    named = _keyed({name: specs[name] for name in SOURCE_NAMES if name in specs}, "name")
    return validated("sources", named, handler, missing)


@dataclass(frozen=True, config=CONFIG)
class PyramidMap:
    path: Path
    program_name: StrictStr = Field("personalization program", validation_alias=AliasPath("program", "name"))
    start_date: Annotated[date, BeforeValidator(_start_date)] = Field(
        validation_alias=AliasPath("schedule", "start_date")
    )
    run_at: Annotated[tuple[int, int], BeforeValidator(_run_at)] = Field(  # (hour, minute) UTC
        (3, 0), validation_alias=AliasPath("schedule", "run_at")
    )
    late_lookback_days: Annotated[StrictInt, Field(ge=0)] = Field(  # activity landing this late still counts
        0, validation_alias=AliasPath("schedule", "late_lookback_days")
    )
    north_star: NorthStar = Field()
    metrics: Annotated[dict[str, Metric], BeforeValidator(lambda specs: _keyed(specs, "id"))] = Field()
    goals: tuple[Goal, ...] = ()
    touchpoints: tuple[Touchpoint, ...] = ()
    campaigns: tuple[Campaign, ...] = ()
    segments: Segments = Field()
    actionable: Actionable = Field()
    sources: Annotated[dict[str, Source], WrapValidator(_every_source)] = Field()
    consent: Consent = Consent()
    # user_daily's columns and user_features' (assets/pyramid_map/measures.py)
    measures: Annotated[dict[str, Measure], BeforeValidator(lambda specs: _keyed(specs, "name"))] = Field()
    features: Features = Field()

    def campaign(self, campaign_id: str) -> Campaign:
        return next(c for c in self.campaigns if c.id == campaign_id)

    def touchpoint(self, touchpoint_id: str) -> Touchpoint:
        return next(t for t in self.touchpoints if t.id == touchpoint_id)

    @model_validator(mode="wrap")
    @classmethod
    def _sections_and_references(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> PyramidMap:
        """Sections that are mappings, then (once every section is valid) every reference between them."""
        pyramid_map = validated("PyramidMap", data, handler, mapping_problems(data, ("program", "schedule")))
        fail("PyramidMap", reference_problems(pyramid_map) + consent_default_problems(pyramid_map))
        return pyramid_map
