"""Expectation suites: one GX 1.x suite per raw source, `expectations/<source>.json`.

Each file is exactly what GX's `ExpectationSuite.to_json_dict()` writes, so GX tools read it and a
person can edit it. `load_suite` checks every expectation (what it decides, its reason, its severity)
and splits the suite into row and column `Rule`s; `peek_rules` reads the same file without GX, for
declaring Dagster checks in a process that does not validate. GX is imported inside the functions
that build GX objects, never at import time.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.lake import write_text_atomic

if TYPE_CHECKING:  # pragma: no cover - typing only
    from great_expectations.core import ExpectationSuite

# expectations/ at the top of the checkout; in an installed package, the copy its symlink carried in
EXPECTATIONS_DIR = (Path(__file__).parent / "expectations").resolve()
SOURCES = ("events", "transactions", "profiles")
DECIDES = ("row", "column")
SEVERITIES = ("critical", "warning")
REASON_PATTERN = re.compile(r"[a-z][a-z0-9_]*")


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file, the expectation and the fix."""


@dataclass(frozen=True)
class Rule:
    """One expectation of a suite, with what its failure decides."""

    id: str
    type: str
    column: str | None
    decides: str  # "row" or "column"
    reason: str | None  # the quarantine reason code of a row expectation
    severity: str  # "critical" or "warning"
    mostly: float | None
    kwargs: Mapping[str, Any]
    check_name: str  # a Dagster-safe name, unique in the suite

    @property
    def short_type(self) -> str:
        return _short_type(self.type)


@dataclass(frozen=True)
class Suite:
    """A GX suite loaded from its JSON file, with its expectations split into row and column rules."""

    name: str
    gx_suite: ExpectationSuite
    rules: tuple[Rule, ...]
    path: Path | None = None

    @property
    def row_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.decides == "row")

    @property
    def column_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.decides == "column")

    @property
    def reasons(self) -> tuple[str, ...]:
        """The row reasons in the order they first appear in the suite."""
        return tuple(dict.fromkeys(r.reason for r in self.row_rules if r.reason))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every frame column the suite reads (expectation columns and row-condition columns)."""
        names: dict[str, None] = {}
        for rule in self.rules:
            for name in _rule_columns(rule):
                names[name] = None
        return tuple(names)

    @property
    def parameters(self) -> tuple[str, ...]:
        """The names of the `$PARAMETER`s the suite needs at validation time."""
        names: dict[str, None] = {}
        for rule in self.rules:
            for value in rule.kwargs.values():
                if isinstance(value, dict) and "$PARAMETER" in value:
                    names[str(value["$PARAMETER"])] = None
        return tuple(names)

    def to_json_dict(self) -> dict:
        """The suite in GX's own JSON form (what the file holds)."""
        return self.gx_suite.to_json_dict()

    @cached_property
    def groups(self) -> list[tuple[tuple[str, ...], ExpectationSuite, bool]]:
        """The suite cut for `validate_batch(by_column=True)`: (columns read, a GX suite of the
        expectations on exactly those columns and of one kind, whether they are row expectations)."""
        import great_expectations as gx

        keys: dict[tuple[tuple[str, ...], bool], list[str]] = {}
        for rule in self.rules:
            columns = tuple(dict.fromkeys(_rule_columns(rule))) or self.columns  # table-level: all
            keys.setdefault((columns, rule.decides == "row"), []).append(rule.id)
        configurations = {e.id: e.configuration for e in self.gx_suite.expectations}
        return [
            (columns, gx.ExpectationSuite(name=self.name, expectations=[configurations[i] for i in ids]), is_row)
            for (columns, is_row), ids in keys.items()
        ]


def suite_path(source: str) -> Path:
    """`expectations/<source>.json`."""
    return EXPECTATIONS_DIR / f"{source}.json"


def load_suite(path: str | Path) -> Suite:
    """Read a GX 1.x suite JSON file and check what this project needs of it.

    Each expectation is built on its own, so a bad one raises `SuiteError` naming it (GX's own
    `ExpectationSuite(...)` logs and drops an expectation whose configuration it rejects in some
    cases). Expectations without an `id` get a stable one (uuid5 of the suite name and position).
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SuiteError(f"{path}: cannot be read as JSON ({err})") from err
    return suite_from_dict(document, path=path)


def suite_from_dict(document: Mapping[str, Any], path: Path | None = None) -> Suite:
    """A `Suite` from GX's suite dict (the parsed JSON of a suite file)."""
    import great_expectations as gx
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    where = str(path) if path else "suite"
    if not isinstance(document, Mapping) or not isinstance(document.get("name"), str) or not document["name"]:
        raise SuiteError(f'{where}: a suite is a JSON object with a non-empty "name"')
    raw_expectations = document.get("expectations")
    if not isinstance(raw_expectations, list) or not raw_expectations:
        raise SuiteError(f'{where}: "expectations" must be a non-empty list')
    name = document["name"]

    expectations, rules, seen_ids = [], [], set()
    for position, raw in enumerate(raw_expectations):
        label = f"{where}: expectations[{position}]"
        if not isinstance(raw, Mapping):
            raise SuiteError(f"{label}: an expectation is a JSON object")
        item = dict(raw)
        meta = dict(item.get("meta") or {})
        item["meta"] = meta
        item.setdefault("id", str(uuid.uuid5(uuid.NAMESPACE_URL, f"pyramid-quality:{name}:{position}")))
        if item["id"] in seen_ids:
            raise SuiteError(f"{label}: id {item['id']!r} is used twice")
        seen_ids.add(item["id"])
        if "severity" in meta:
            raise SuiteError(
                f'{label}: severity goes in the expectation\'s own top-level "severity" field (GX 1.x), not in meta'
            )
        severity = str(item.get("severity") or "critical")
        if severity not in SEVERITIES:
            raise SuiteError(f"{label}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        decides = meta.get("decides")
        if decides not in DECIDES:
            raise SuiteError(f'{label} ({item.get("type")}): meta.decides must be "row" or "column", got {decides!r}')
        reason = meta.get("reason")
        if decides == "row" and (not isinstance(reason, str) or not REASON_PATTERN.fullmatch(reason)):
            raise SuiteError(
                f"{label} ({item.get('type')}): a row expectation needs meta.reason, a snake_case "
                f"code such as missing_user_id; got {reason!r}"
            )
        if decides == "column" and reason is not None:
            raise SuiteError(f"{label} ({item.get('type')}): meta.reason is for row expectations only")
        try:
            configuration = ExpectationConfiguration(**item)
            expectation = configuration.to_domain_obj()
        except Exception as err:  # GX raises pydantic, GX and key errors alike
            detail = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
            raise SuiteError(f"{label} ({item.get('type')}): GX refuses it: {detail}") from err
        if decides == "row" and not isinstance(
            expectation, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
        ):
            raise SuiteError(
                f'{label} ({item.get("type")}): decides "row" but it is not a row-wise (map) '
                f'expectation, so it cannot say which rows fail; mark it "column"'
            )
        kwargs = dict(expectation.configuration.kwargs)
        mostly = kwargs.get("mostly")
        rules.append(
            Rule(
                id=item["id"],
                type=item["type"],
                column=kwargs.get("column"),
                decides=decides,
                reason=reason,
                severity=severity,
                mostly=None if mostly is None else float(mostly),
                kwargs=kwargs,
                check_name="",
            )
        )
        expectations.append(configuration)  # GX refuses Expectation objects that carry an id
    rules = [replace(rule, check_name=name) for rule, name in zip(rules, _check_names(rules))]

    gx_suite = gx.ExpectationSuite(
        name=name,
        expectations=expectations,
        suite_parameters=document.get("suite_parameters") or None,
        meta=dict(document.get("meta") or {}),
        notes=document.get("notes"),
        id=document.get("id"),
    )
    if len(gx_suite.expectations) != len(expectations):  # GX dropped one without raising
        raise SuiteError(f"{where}: GX kept {len(gx_suite.expectations)} of {len(expectations)} expectations")
    return Suite(name=name, gx_suite=gx_suite, rules=tuple(rules), path=path)


def with_kwargs(suite: Suite, changes: Mapping[tuple[str, str], Mapping[str, Any]]) -> Suite:
    """The suite with the map's domain rules in place (`Actionable.suite_changes`): for each (expectation type,
    column), the given kwargs replaced in the expectations of that type on that column that already have them
    (an in-set's `value_set`, a between's `strict_min`). What runs, its saved results and Data Docs show them.
    SuiteError when no expectation takes a change."""
    if not changes:
        return suite
    document = suite.to_json_dict()
    applied = set()
    for item in document["expectations"]:
        key = (item["type"], item["kwargs"].get("column"))
        if key in changes and set(changes[key]) <= set(item["kwargs"]):
            item["kwargs"].update(changes[key])
            applied.add(key)
    missing = [f"{kind} on {column}" for kind, column in changes if (kind, column) not in applied]
    if missing:
        raise SuiteError(f"{suite.path or suite.name}: no expectation takes the map's rule: {', '.join(missing)}")
    return suite_from_dict(document, path=suite.path)


def load_suites(directory: str | Path = EXPECTATIONS_DIR) -> dict[str, Suite]:
    """Every `<source>.json` of SOURCES in `directory`, by source name."""
    return {source: load_suite(Path(directory) / f"{source}.json") for source in SOURCES}


def write_suite(suite: Suite, path: str | Path) -> Path:
    """Write a suite in GX's JSON form (2-space indent, a final newline), atomically."""
    path = Path(path)
    text = json.dumps(suite.to_json_dict(), indent=2, ensure_ascii=False) + "\n"
    return write_text_atomic(text, path)


def _short_type(expectation_type: str) -> str:
    for prefix in ("expect_column_values_to_", "expect_column_", "expect_table_", "expect_"):
        if expectation_type.startswith(prefix):
            return expectation_type[len(prefix) :]
    return expectation_type


def _check_names(rules: list[Rule]) -> list[str]:
    """`<column>__<expectation>` (e.g. `event_type__be_in_set`: a Dagster check name), with the reason
    added where a column has the same expectation twice, then a number if still not unique."""
    bases = [re.sub(r"[^A-Za-z0-9_]", "_", f"{r.column or 'table'}__{r.short_type}") for r in rules]
    names = [
        f"{base}__{rule.reason}" if bases.count(base) > 1 and rule.reason else base for base, rule in zip(bases, rules)
    ]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if names.count(name) == 1 else f"{name}_{seen[name]}")
    return unique


_QUERY_WORDS = {"and", "or", "not", "in", "is", "True", "False", "None", "true", "false"}


def _condition_columns(condition: Any) -> list[str]:
    if isinstance(condition, dict):
        found = []
        column = condition.get("column")
        if isinstance(column, dict) and isinstance(column.get("name"), str):
            found.append(column["name"])
        for value in condition.values():
            if isinstance(value, (dict, list)):
                found.extend(_condition_columns(value))
        return found
    if isinstance(condition, list):
        return [name for item in condition for name in _condition_columns(item)]
    return []


def _rule_columns(rule: Rule) -> list[str]:
    names = [rule.column] if rule.column else []
    for key in ("column_A", "column_B"):
        if rule.kwargs.get(key):
            names.append(rule.kwargs[key])
    names.extend(rule.kwargs.get("column_list") or [])
    condition = rule.kwargs.get("row_condition")
    if hasattr(condition, "dict"):  # a GX Condition object
        condition = condition.dict()
    if isinstance(condition, dict) and condition.get("type") != "pass_through":
        names.extend(_condition_columns(condition))  # GX 1.x structured conditions: {"column": {"name": ...}}
    elif condition:
        text = condition.get("pass_through_filter") if isinstance(condition, dict) else condition
        # pandas query syntax: identifiers outside quotes (back-quoted names too)
        unquoted = re.sub(r"\"[^\"]*\"|'[^']*'", " ", str(text))
        names.extend(re.findall(r"`([^`]+)`", unquoted))
        bare = re.sub(r"`[^`]+`", " ", unquoted)
        # a name, not an attribute (.str), a method or function call (isnull(...)) or an @variable
        names.extend(n for n in re.findall(r"(?<![.@\w])([A-Za-z_]\w*)\b(?!\s*\()", bare) if n not in _QUERY_WORDS)
    return names


def peek_rules(source: str, directory: str | Path = EXPECTATIONS_DIR) -> list[Rule]:
    """The rules of a suite file read as plain JSON, without GX (for declaring Dagster checks in a
    process that does not validate). `load_suite` checks the same file fully when a run validates."""
    path = Path(directory) / f"{source}.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    rules = []
    for position, item in enumerate(document.get("expectations") or []):
        meta, kwargs = item.get("meta") or {}, item.get("kwargs") or {}
        rules.append(
            Rule(
                id=item.get("id") or f"{position}",
                type=item["type"],
                column=kwargs.get("column"),
                decides=meta.get("decides"),
                reason=meta.get("reason"),
                severity=str(item.get("severity") or "critical"),
                mostly=kwargs.get("mostly"),
                kwargs=kwargs,
                check_name="",
            )
        )
    return [replace(rule, check_name=name) for rule, name in zip(rules, _check_names(rules))]
