"""`sources` of the map: where each source lands, in which format, and how its columns map onto the contract.

A source's columns reach the canonical ones (docs/contracts.md) by a rename (`columns`: source name ->
canonical), an expression over the source's columns (`expressions`: canonical -> SQL, checked by
assets/sql_guard.py), a constant (`constants`), or a generated key (`generated_key`). Naive and date-only
timestamps are read in the declared `timezone`. The raw layer applies the mapping (assets/source_mapping.py).
"""

from __future__ import annotations

import difflib
import zoneinfo
from typing import Any, Literal, get_args

from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

from assets.contract import CANONICAL_COLUMNS, KEY_COLUMNS
from assets.pyramid_map.validation import CONFIG, Float, Problem, fail, validated
from assets.sql_guard import check_condition, expression_columns

SourceFormat = Literal["jsonl", "csv", "parquet"]
SourceName = Literal["events", "profiles", "transactions", "erasure_requests"]
SOURCE_FORMATS: tuple[str, ...] = get_args(SourceFormat)
SOURCE_NAMES: tuple[str, ...] = get_args(SourceName)
ACTIVITY_SOURCES = ("events", "transactions")  # at least one is declared: a user is known from their activity
NOT_DECLARED = "not in this program's data"  # a source the map leaves out: its tables exist, empty
NOT_DECLARED_NOTE = f"not declared in the map ({NOT_DECLARED}): its tables stay empty, no file is looked for"
Scalar = StrictStr | StrictBool | StrictInt | StrictFloat


VolumeAction = Literal["warn", "block"]


@dataclass(frozen=True, config=CONFIG)
class Volume:
    """`sources.<name>.volume`: the day's landed rows against the median of the previous landed days."""

    tolerance: Float = 0.5  # the largest accepted |rows - median| / median
    action: VolumeAction = "warn"  # block: a failed check stops the day's downstream assets
    window_days: StrictInt = 7  # how many previous landed days the median is taken over
    min_days: StrictInt = 3  # fewer previous landed days than this: not judged yet

    @model_validator(mode="after")
    def _in_range(self) -> Volume:
        if self.tolerance <= 0 or self.window_days < 1 or self.min_days < 1 or self.min_days > self.window_days:
            raise ValueError("tolerance must be above 0 and 1 <= min_days <= window_days")
        return self


@dataclass(frozen=True, config=CONFIG)
class CsvDialect:
    """`sources.<name>.csv`: how a CSV file is split; without a header, `names` names its columns in order."""

    delimiter: StrictStr = ","
    quote: StrictStr = '"'
    header: StrictBool = True
    names: tuple[StrictStr, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> CsvDialect:
        if len(self.delimiter) != 1 or len(self.quote) != 1 or self.delimiter == self.quote:
            raise ValueError("delimiter and quote must be two different single characters")
        if self.header == bool(self.names):
            raise ValueError("names (the columns in order) are required without a header, and only then")
        return self


@dataclass(frozen=True, config=CONFIG)
class Source:
    """Where a source lands and how its columns map onto the contract (docs/contracts.md, "Sources of any shape")."""

    name: StrictStr
    path: StrictStr = Field("", validate_default=True)
    format: SourceFormat = "csv"
    columns: dict[StrictStr, StrictStr] = Field(default_factory=dict)  # source name -> canonical name
    # the shape beyond renames; kept out of the repr with the feeds' settings
    expressions: dict[StrictStr, StrictStr] = Field(default_factory=dict, repr=False)  # canonical -> SQL
    constants: dict[StrictStr, Scalar] = Field(default_factory=dict, repr=False)  # canonical -> value
    timezone: StrictStr | None = Field(None, repr=False)  # IANA zone of naive and date-only timestamps
    generated_key: StrictBool = Field(False, repr=False)  # the key is a hash of the row (assets/source_mapping.py)
    csv: CsvDialect = Field(CsvDialect(), repr=False)
    compression: Literal["none", "gzip"] = Field("none", repr=False)
    # feeds (README "Missing and late feeds"); kept out of the repr, which names where and how a source lands
    required: StrictBool = Field(True, repr=False)  # a day without a file for the source is not processed
    volume: Volume | None = Field(None, repr=False)  # None: no volume check

    @field_validator("format", mode="before")
    @classmethod
    def _known_format(cls, source_format: Any) -> Any:
        if source_format not in SOURCE_FORMATS:
            raise ValueError(f"must be one of {', '.join(SOURCE_FORMATS)}")
        return source_format

    @field_validator("path")
    @classmethod
    def _pattern(cls, path: str) -> str:
        if not path.strip():
            raise ValueError("is required (a glob under the data root, e.g. landing/events/{ds}/*.jsonl)")
        return path

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        return zone if zone is None else known_zone(zone)

    @model_validator(mode="wrap")
    @classmethod
    def _mapping(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Source:
        source = validated("Source", data, handler, [])
        fail("Source", source_problems(source))
        return source


def known_zone(zone: str) -> str:
    """The IANA time zone name, else ValueError naming close matches."""
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(zone, sorted(zoneinfo.available_timezones()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown time zone {zone!r}: expected an IANA name such as UTC or Europe/Berlin{hint}"
        ) from None
    return zone


def source_problems(source: Source) -> list[Problem]:
    """The mapping's problems: unknown canonical names, a column defined twice, unsafe expressions, a key
    generated for a source without one."""
    canonical = CANONICAL_COLUMNS.get(source.name, [])
    problems = []
    targets: dict[str, str] = {}
    declared = [("columns", key, value) for key, value in source.columns.items()]
    declared += [("expressions", key, key) for key in source.expressions]
    declared += [("constants", key, key) for key in source.constants]
    for section, key, target in declared:
        if target not in canonical:
            close = difflib.get_close_matches(target, canonical, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                (
                    (section, key),
                    f"unknown canonical column {target!r}; {hint}{source.name} has: {', '.join(canonical)}",
                )
            )
        elif target in targets:
            problems.append(((section, key), f"{target!r} is already mapped under `{targets[target]}`"))
        else:
            targets[target] = section
    problems += _expression_problems(source)
    key = KEY_COLUMNS.get(source.name)
    if source.generated_key and key is None:
        problems.append((("generated_key",), f"{source.name} has no key column to generate"))
    elif source.generated_key and key in targets:
        problems.append((("generated_key",), f"the key {key!r} is already mapped under `{targets[key]}`"))
    return problems


def _expression_problems(source: Source) -> list[Problem]:
    """Each expression must pass the SQL guard; over a headerless CSV's `names`, else over any column name
    (the columns are checked against each file when it lands)."""
    problems = []
    for target, text in source.expressions.items():
        names = list(source.csv.names) if source.format == "csv" and not source.csv.header else None
        allowed = names if names is not None else expression_columns(text)
        problems += [
            (("expressions", target), f"{problem}" + (f"; the columns are: {', '.join(names)}" if names else ""))
            for problem in check_condition(text, allowed)
        ]
    return problems
