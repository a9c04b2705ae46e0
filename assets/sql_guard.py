"""Checks a SQL boolean expression from the map before it is ever run.

Segment rules and metric conditions are written by people in pyramid.yaml and evaluated by DuckDB.
Only column names from an allow-list, literals, operators and a few scalar functions are accepted;
a subquery, a table function, a file read, a second statement or anything else is refused. What passes
runs on a `sandboxed_connection`, which reads only the relations registered on it.
"""

from __future__ import annotations

import threading

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

_ALLOWED_NODES: tuple[type[exp.Expression], ...] = (
    exp.Column,
    exp.Identifier,
    exp.Literal,
    exp.Boolean,
    exp.Null,
    exp.Paren,
    exp.Tuple,
    exp.And,
    exp.Or,
    exp.Not,
    exp.Neg,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.Mod,
    exp.Case,
    exp.If,
    exp.Coalesce,
    exp.Lower,
    exp.Upper,
    exp.Abs,
    exp.Round,
    exp.Least,
    exp.Greatest,
    exp.Cast,
    exp.DataType,
    exp.Floor,
    exp.Ceil,
    exp.Length,
)

# A measure's filter may also read a JSON property: json_extract_string(properties, '$.key') (or ->>).
MEASURE_FILTER_NODES: tuple[type[exp.Expression], ...] = (
    exp.JSONExtractScalar,
    exp.JSONPath,
    exp.JSONPathRoot,
    exp.JSONPathKey,
)

# GLOBAL: the session settings are the defaults of every cursor on the sandbox database
_SANDBOX_SETTINGS = (
    "SET GLOBAL TimeZone = 'UTC'",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET enable_external_access = false",
    "SET GLOBAL python_enable_replacements = false",  # no table found by a Python variable's name
    "SET lock_configuration = true",  # last: nothing after it can undo the settings above
)
_SANDBOX: list[duckdb.DuckDBPyConnection] = []  # the process's sandbox database, opened on first use
_SANDBOX_LOCK = threading.Lock()


class UnsafeExpression(ValueError):
    """A map expression that may not run; the message names the offending part."""


def check_condition(
    text: str, allowed_columns: set[str] | list[str], extra_nodes: tuple[type[exp.Expression], ...] = ()
) -> list[str]:
    """The problems with `text` as a boolean condition over `allowed_columns` (empty if none); `extra_nodes`
    are allowed besides the usual ones."""
    allowed, allowed_nodes = set(allowed_columns), _ALLOWED_NODES + extra_nodes
    try:
        statements = sqlglot.parse(text, dialect="duckdb")
    except ParseError as err:
        return [f"cannot be parsed as SQL: {err.errors[0]['description'] if err.errors else err}"]
    statements = [s for s in statements if s is not None]
    if len(statements) != 1:
        return ["must be a single expression (no ';' and no second statement)"]
    tree = statements[0]
    problems = []
    for node in tree.walk():
        if not isinstance(node, allowed_nodes):
            problems.append(f"'{node.sql(dialect='duckdb')[:60]}' is not allowed ({type(node).__name__})")
        elif isinstance(node, exp.Column):
            if node.table:
                problems.append(f"'{node.sql()}': qualified column names are not allowed")
            elif node.name not in allowed:
                problems.append(f"unknown column '{node.name}'")
    return _unique(problems)


def expression_columns(text: str) -> list[str]:
    """The unqualified column names an expression reads, in order of appearance (none if it does not parse)."""
    try:
        statements = [s for s in sqlglot.parse(text, dialect="duckdb") if s is not None]
    except ParseError:
        return []
    return _unique([node.name for tree in statements for node in tree.find_all(exp.Column) if not node.table])


def require_safe(text: str, allowed_columns: set[str] | list[str], where: str) -> str:
    """Return `text` if it is a safe condition, else raise naming `where` and every problem."""
    problems = check_condition(text, allowed_columns)
    if problems:
        raise UnsafeExpression(f"{where}: rule {text!r} refused: " + "; ".join(problems))
    return text


def sandboxed_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for map expressions: no file system, no extensions, settings locked.

    It reads only the Arrow tables registered on it (`con.register`), never a Python variable by name.
    It is a cursor on one locked in-memory database per process (opening a database costs tens of
    milliseconds, a cursor almost nothing); each cursor sees only the tables registered on it.
    """
    with _SANDBOX_LOCK:
        if not _SANDBOX:
            con = duckdb.connect(":memory:")
            for setting in _SANDBOX_SETTINGS:
                con.execute(setting)
            _SANDBOX.append(con)
        return _SANDBOX[0].cursor()


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
