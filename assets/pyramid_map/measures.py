"""The map's `measures` (per user and UTC day: user_daily's columns) and `features` (per user and as-of day:
user_features' columns), declared, checked here and compiled to SQL by assets/measures.py and assets/features.py.

A measure is one aggregate over one source's rows, optionally filtered by `where`; a feature reads measures.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal, get_args

from pydantic import Field, StrictStr, ValidatorFunctionWrapHandler, model_validator
from pydantic.dataclasses import dataclass

from assets.contract import CANONICAL_COLUMNS, MEASURE_SOURCES, TIME_COLUMN
from assets.pyramid_map.validation import CONFIG, Problem, validated
from assets.sql_guard import MEASURE_FILTER_NODES, check_condition

Aggregate = Literal["count", "count_distinct", "sum", "min", "max", "last"]
AGGREGATES = ("count", "count_distinct", "sum", "min", "max", "last")
SUMMABLE = ("count", "count_distinct", "sum")  # summed over days: windowed sums, metric conditions
# Profile features: from the profile snapshot (assets/features.py says how each is computed).
ProfileFeature = Literal["country", "plan", "age_band", "tenure_days", "consent_personalization"]
PROFILE_FEATURES: tuple[str, ...] = get_args(ProfileFeature)


def close_match(name: str, known: list[str] | tuple[str, ...]) -> str:
    """ "; did you mean 'x'?" for the closest known name, "" when none is close."""
    matches = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {matches[0]!r}?" if matches else ""


@dataclass(frozen=True, config=CONFIG)
class Measure:
    """`measures.<name>`: `agg` over the rows of `source` passing `where`, per user and UTC day of occurred_at.

    count (BIGINT, 0), count_distinct `column` (BIGINT, 0), sum of `column` (summed as an exact decimal, DOUBLE,
    0.0), min / max of `column` (its type, NULL), last: `column` of the latest row (ties: the greatest value),
    which also writes `<name>_at`, the latest row's occurred_at."""

    name: StrictStr
    source: StrictStr
    agg: Aggregate
    column: StrictStr = ""
    where: StrictStr = ""

    @model_validator(mode="wrap")
    @classmethod
    def _columns(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Measure:
        return validated("Measure", data, handler, _measure_problems(data))

    @property
    def summable(self) -> bool:
        return self.agg in SUMMABLE

    def columns(self) -> list[str]:
        """The user_daily columns the measure writes, in table order."""
        return [f"{self.name}_at", self.name] if self.agg == "last" else [self.name]


def _measure_problems(data: Any) -> list[Problem]:
    if not isinstance(data, dict) or not isinstance(data.get("source"), str):
        return []
    source = data["source"]
    if source not in MEASURE_SOURCES:
        known = " or ".join(MEASURE_SOURCES)
        return [
            (("source",), f"unknown source {source!r}; measures read {known}{close_match(source, MEASURE_SOURCES)}")
        ]
    columns = CANONICAL_COLUMNS[source]
    problems: list[Problem] = []
    column, agg = data.get("column", ""), data.get("agg")
    if isinstance(column, str) and column and column not in columns:
        problems.append((("column",), f"{column!r} is not a column of {source}{close_match(column, columns)}"))
    elif agg in AGGREGATES and agg != "count" and not column:
        problems.append((("column",), f"is required for agg {agg} (a column of {source})"))
    elif agg == "count" and column:
        problems.append((("column",), "count counts rows; use count_distinct to count the values of a column"))
    where = data.get("where", "")
    if isinstance(where, str) and where:
        problems += [
            (("where",), f"{problem}; a filter may use the columns of {source}: {', '.join(columns)}")
            for problem in check_condition(where, columns, extra_nodes=MEASURE_FILTER_NODES)
        ]
    return problems


@dataclass(frozen=True, config=CONFIG)
class Windowed:
    """`features.windowed.<name>`, exactly one of: `days_with` (distinct days of the window with the measure
    above 0), `sum_of` (the window's sum of the measures' sum), `average` / `per` (the window's sum of one over
    the window's sum of the other; NULL when that is 0)."""

    name: StrictStr
    days_with: StrictStr = ""
    sum_of: tuple[StrictStr, ...] = ()
    average: StrictStr = ""
    per: StrictStr = ""

    @model_validator(mode="after")
    def _one_kind(self) -> Windowed:
        kinds = [k for k in ("days_with", "sum_of", "average") if getattr(self, k)]
        if len(kinds) != 1:
            raise ValueError("declares exactly one of days_with, sum_of, average (with per)")
        if bool(self.average) != bool(self.per):
            raise ValueError("average needs per (the measure it is divided by), and per needs average")
        return self

    @property
    def kind(self) -> str:
        return "days_with" if self.days_with else "sum_of" if self.sum_of else "average"

    def measures(self) -> tuple[str, ...]:
        return (self.days_with,) if self.days_with else self.sum_of or (self.average, self.per)

    @property
    def monotone(self) -> bool:
        """Grows with the window: its value over part of a window is a lower bound of the whole's."""
        return self.kind != "average"


@dataclass(frozen=True, config=CONFIG)
class Latest:
    """`features.latest.<name>`, one of: `days_since` (days from the UTC day of the measure's latest value to the
    as-of day), `first` (its least value), `last` (its greatest value; of a `last` measure, its latest)."""

    name: StrictStr
    days_since: StrictStr = ""
    first: StrictStr = ""
    last: StrictStr = ""

    @model_validator(mode="after")
    def _one_kind(self) -> Latest:
        if sum(bool(getattr(self, k)) for k in ("days_since", "first", "last")) != 1:
            raise ValueError("declares exactly one of days_since, first, last")
        return self

    @property
    def kind(self) -> str:
        return "days_since" if self.days_since else "first" if self.first else "last"

    @property
    def measure(self) -> str:
        return self.days_since or self.first or self.last


def _named(specs: Any) -> Any:
    if not isinstance(specs, dict):
        return specs
    return {k: {**v, "name": k} if isinstance(v, dict) else v for k, v in specs.items()}


@dataclass(frozen=True, config=CONFIG)
class Features:
    """`features`: user_features' columns after user_id and as_of: `profile`, then `latest`, then per window
    `windowed_sums` (`<m>_<W>d`) and `windowed` (`<name>_<W>d`), then the coverage columns."""

    windowed_sums: tuple[StrictStr, ...] = Field()
    windowed: dict[StrictStr, Windowed] = Field(default_factory=dict)
    latest: dict[StrictStr, Latest] = Field(default_factory=dict)
    profile: tuple[ProfileFeature, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {**data, **{k: _named(data[k]) for k in ("windowed", "latest") if k in data}}

    @property
    def windowed_names(self) -> list[str]:
        """The windowed features in table order: the sums, then the derived ones."""
        return [*self.windowed_sums, *self.windowed]


def declaration_problems(measures: dict[str, Measure], features: Features) -> list[Problem]:
    """A feature names a declared measure of the right aggregate; names do not clash."""
    known = list(measures)
    problems: list[Problem] = []

    def check(loc: tuple[str | int, ...], name: str, wanted: tuple[str, ...], what: str) -> None:
        measure = measures.get(name)
        if measure is None:
            declared = ", ".join(known)
            problems.append((loc, f"unknown measure {name!r}; declared: {declared}{close_match(name, known)}"))
        elif measure.agg not in wanted:
            problems.append((loc, f"measure {name!r} is a {measure.agg}; {what} reads a {' or '.join(wanted)} one"))

    for i, name in enumerate(features.windowed_sums):
        check(("features", "windowed_sums", i), name, SUMMABLE, "a windowed sum")
    for name, spec in features.windowed.items():
        loc = ("features", "windowed", name, spec.kind)
        for i, measure in enumerate(spec.measures()):
            where = (*loc, i) if spec.kind == "sum_of" else loc if i == 0 else ("features", "windowed", name, "per")
            check(where, measure, SUMMABLE, spec.kind)
    for name, spec in features.latest.items():
        wanted = ("min", "max", "last") if spec.kind == "last" else ("min", "max")
        loc = ("features", "latest", name, spec.kind)
        check(loc, spec.measure, wanted, spec.kind)
        measure = measures.get(spec.measure)
        if spec.kind == "days_since" and measure is not None and measure.column != TIME_COLUMN:
            problems.append((loc, f"measure {spec.measure!r} is not a time (the {measure.agg} of {TIME_COLUMN})"))
    problems += _clashes(measures, features)
    return problems


def _clashes(measures: dict[str, Measure], features: Features) -> list[Problem]:
    problems: list[Problem] = []
    daily = {"user_id": "a key", "activity_date": "a key"}
    for name, measure in measures.items():
        for column in measure.columns():
            if column in daily:
                problems.append((("measures", name), f"writes column {column!r}, already {daily[column]}"))
            daily[column] = f"written by measure {name!r}"
    taken = {"user_id": "a key", "as_of": "a key", "history_days": "a coverage column"}
    taken |= {name: "a profile feature" for name in features.profile}
    for name in features.latest:
        if name in taken:
            problems.append((("features", "latest", name), f"name clash: {name!r} is already {taken[name]}"))
        taken[name] = "a latest feature"
    for name in features.windowed:
        if name in features.windowed_sums or name == "complete" or name in taken:
            problems.append((("features", "windowed", name), f"name clash: {name!r} is already a feature"))
    return problems
