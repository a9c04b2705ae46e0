"""Segments over windows that history does not cover yet (docs/segments.md, "Start of history").

A windowed feature whose window reaches before the first day of the lake is NULL (`assets.features`).
A rule on it is NULL, and a NULL rule selects nobody. One case is decidable all the same: a sum of
counts, days or positive amounts only grows as its window extends back, so its covered part
(`<name>_history`) is a lower bound of it, and an atom `<sum> >= c` (or `>`) that holds on the lower
bound holds on the whole window. Such an atom is read on `coalesce(<name>_<W>d, <name>_history)` when
nothing above it but AND, OR and parentheses can turn a FALSE into a TRUE (Kleene logic: the rewritten
rule is TRUE only where the full-window rule is certainly TRUE). Every other use stays NULL.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import sqlglot
from sqlglot import exp

from assets.features import HISTORY
from assets.pyramid_map import SegmentDefinition

_WINDOWED = re.compile(r"^(?P<name>[a-z_]+)_(?P<days>\d+)d$")
_MONOTONE_PARENTS = (exp.And, exp.Or, exp.Paren)


def rule_windows(rule: str) -> set[int]:
    """The window lengths (days) of the windowed feature columns a rule reads."""
    found = set()
    for column in sqlglot.parse_one(rule, dialect="duckdb").find_all(exp.Column):
        match = _WINDOWED.match(column.name)
        if match and match["name"] != "complete":
            found.add(int(match["days"]))
    return found


def segment_windows(definition: SegmentDefinition) -> set[int]:
    """The windows a segment needs covered: its rule's; an RFM window; the lifecycle dormant window."""
    if definition.method == "rfm":
        return {definition.scoring.window_days}
    if definition.method == "lifecycle":
        return {definition.scoring.dormant_days}
    return rule_windows(definition.rule)


def windows_complete(windows: set[int], history_days: int | None) -> bool:
    """Every window is covered by `history_days` days of history (None: history start unknown, covered)."""
    return history_days is None or all(w <= history_days for w in windows)


def lower_bound_rule(rule: str, columns: set[str] | list[str], monotone: Collection[str]) -> str:
    """The rule with every monotone atom on a windowed sum read on its lower bound (module docstring);
    the rule unchanged when it has none or the table has no `<name>_history` columns. `monotone`: the
    windowed features that grow with the window (`features.monotone_windowed`)."""
    tree = sqlglot.parse_one(rule, dialect="duckdb")
    columns = set(columns)
    changed = False
    for column in list(tree.find_all(exp.Column)):
        match = _WINDOWED.match(column.name)
        covered = f"{match['name']}_{HISTORY}" if match else None
        if not match or match["name"] not in monotone or covered not in columns or not _monotone(column):
            continue
        column.replace(exp.Coalesce(this=column.copy(), expressions=[exp.column(covered)]))
        changed = True
    return tree.sql(dialect="duckdb") if changed else rule


def _monotone(column: exp.Column) -> bool:
    """`column >= constant` or `column > constant` (either way round) under AND / OR / parentheses only."""
    atom = column.parent
    if isinstance(atom, (exp.GTE, exp.GT)) and atom.this is column:
        bound = atom.expression
    elif isinstance(atom, (exp.LTE, exp.LT)) and atom.expression is column:
        bound = atom.this
    else:
        return False
    if any(True for _ in bound.find_all(exp.Column)):
        return False
    node = atom.parent
    while node is not None:
        if not isinstance(node, _MONOTONE_PARENTS):
            return False
        node = node.parent
    return True
