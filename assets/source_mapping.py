"""A source's declared shape mapped onto the canonical contract: the SQL the raw layer lands each file with.

The readers of assets/raw.py turn a landing file into rows of the source's own columns, as text, with
their line (`_source_line`) and, for a record that did not parse, its raw text (`_raw_text`). This
module says which columns to read, checks them against the file, and projects them onto the canonical
columns (docs/contracts.md, "Sources of any shape"), in three steps:

1. each canonical column from, in this order of precedence: a constant (`constants`), an expression
   over the source's columns (`expressions`, checked by assets/sql_guard.py; a CAST in it is a
   TRY_CAST, so that a bad value becomes NULL and its row is quarantined, never the file refused), the
   source column renamed onto it (`columns`), or the source column of the same name. An optional
   canonical column that the file lacks is NULL; a required one (the source's suite expects it not
   null) or a column an expression reads is an error naming the file and the column;
2. with a declared `timezone`, each naive timestamp (ISO 8601 date and time without an offset, or a
   date alone, read as midnight) is the wall time in that zone, landed as the UTC instant
   `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`. DuckDB's ICU decides the hours around a change of clocks: a wall
   time of the hour repeated when clocks go back is its second occurrence (standard time), one of the
   hour skipped when they go forward takes the offset before the change. Timestamps with an offset
   are left as they came; without a declared zone a naive timestamp stays naive and is quarantined as
   `bad_timestamp`;
3. with `generated_key: true`, the key (event_id, txn_id) is the lowercase hex SHA-256 of the JSON
   array (no spaces; null for a missing value) of the row's other canonical columns as landed by steps
   1-2, in the contract's order. Identical rows therefore get the same key and collapse as duplicates
   in the actionable layer (the first landed is kept): a source without a key cannot tell two equal
   purchases in the same instant from one delivered twice.

A record that did not parse keeps every canonical column NULL, whatever the mapping.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from assets.contract import CANONICAL_COLUMNS, KEY_COLUMNS
from assets.pyramid_map import Source
from assets.quality.suites import EXPECTATIONS_DIR, peek_rules
from assets.quality.typed_batch import TYPING
from assets.sql_guard import expression_columns

KINDS: dict[str, dict[str, str]] = {**TYPING, "erasure_requests": {"user_id": "text", "requested_at": "timestamp"}}
NAIVE_TIMESTAMP = r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?"


def required_columns(source_name: str) -> list[str]:
    """The canonical columns the source's suite expects not null (every column when it has no suite)."""
    if not (EXPECTATIONS_DIR / f"{source_name}.json").exists():
        return list(CANONICAL_COLUMNS[source_name])
    expected = {r.column for r in peek_rules(source_name) if r.type == "expect_column_values_to_not_be_null"}
    return [c for c in CANONICAL_COLUMNS[source_name] if c in expected]


def canonical_to_source(source: Source) -> dict[str, str]:
    """canonical name -> the source column read for it, for the canonical columns read from one column
    (not a constant, an expression or a generated key); `columns` in the map maps source -> canonical."""
    derived = {*source.constants, *source.expressions, *([KEY_COLUMNS[source.name]] if source.generated_key else [])}
    mapping = {c: c for c in CANONICAL_COLUMNS[source.name] if c not in derived}
    for source_name, canonical in source.columns.items():
        mapping[canonical] = source_name
    return mapping


def read_columns(source: Source) -> list[str]:
    """The source's columns a file is read for, in order: those mapped one to one, then those expressions read."""
    mapped = list(canonical_to_source(source).values())
    return list(dict.fromkeys(mapped + [c for text in source.expressions.values() for c in expression_columns(text)]))


def column_problems(source: Source, found: list[str]) -> tuple[list[str], list[str]]:
    """(the columns the file must have but lacks, as the messages name them; the optional canonical columns
    it lacks). `found`: the file's columns (a CSV header, a Parquet schema)."""
    present = set(found)
    required = set(required_columns(source.name))
    missing = [
        f"{name!r}" + (f" (canonical {canonical!r})" if name != canonical else "")
        for canonical, name in canonical_to_source(source).items()
        if name not in present and canonical in required
    ]
    for target, text in source.expressions.items():
        read = expression_columns(text)
        missing += [f"{c!r} (read by the expression of {target!r})" for c in read if c not in present]
    absent = [c for c, name in canonical_to_source(source).items() if name not in present and c not in required]
    return list(dict.fromkeys(missing)), absent


def is_renaming_only(source: Source) -> bool:
    """Whether the mapping only renames columns (no constant, expression, time zone or generated key)."""
    return not (source.constants or source.expressions or source.timezone or source.generated_key)


def mapped_sql(source: Source, relation: str, present: set[str]) -> str:
    """SELECT of the canonical columns (VARCHAR), `_source_line` and `_raw_text` from `relation`, which holds
    the present source columns as text, `_source_line` and `_raw_text`."""
    to_source = canonical_to_source(source)
    columns = []
    for canonical in CANONICAL_COLUMNS[source.name]:
        if canonical in source.constants:
            value = _literal(_constant_text(source.constants[canonical]))
        elif canonical in source.expressions:
            value = f"CAST(({_try_casts(source.expressions[canonical])}) AS VARCHAR)"
        elif to_source.get(canonical) in present:
            value = _quoted(to_source[canonical])
        else:
            value = "NULL"  # absent optional column, or a key generated below
        columns.append(f"CAST(CASE WHEN _raw_text IS NULL THEN {value} END AS VARCHAR) AS {_quoted(canonical)}")
    sql = f"SELECT {', '.join(columns)}, _source_line, _raw_text FROM {relation}"
    if source.timezone is not None:
        sql = _zoned(source, sql)
    if source.generated_key:
        sql = _keyed(source, sql)
    return sql


def naive_to_utc_sql(value: str, zone: str) -> str:
    """SQL: a naive timestamp text (or a date) read as wall time in `zone`, as UTC ISO 8601 text with `Z`;
    any other text unchanged."""
    utc = f"timezone('UTC', timezone({_literal(zone)}, try_cast(trim({value}) AS TIMESTAMP)))"
    naive = f"regexp_full_match(trim({value}), '{NAIVE_TIMESTAMP}')"
    return f"CASE WHEN {naive} THEN coalesce({iso_sql(utc, 'Z')}, {value}) ELSE {value} END"


def iso_sql(timestamp: str, suffix: str) -> str:
    """SQL: a TIMESTAMP as `YYYY-MM-DDTHH:MM:SS` then `suffix`, with `.ffffff` when it has a fraction of a second."""
    whole = f"strftime({timestamp}, '%Y-%m-%dT%H:%M:%S{suffix}')"
    fraction = f"strftime({timestamp}, '%Y-%m-%dT%H:%M:%S.%f{suffix}')"
    return f"CASE WHEN epoch_us({timestamp}) % 1000000 = 0 THEN {whole} ELSE {fraction} END"


def _zoned(source: Source, sql: str) -> str:
    zoned = [c for c, kind in KINDS.get(source.name, {}).items() if kind == "timestamp"]
    replaced = ", ".join(f"{naive_to_utc_sql(_quoted(c), source.timezone or 'UTC')} AS {_quoted(c)}" for c in zoned)
    return f"SELECT * REPLACE ({replaced}) FROM ({sql})"


def _keyed(source: Source, sql: str) -> str:
    key = KEY_COLUMNS[source.name]
    others = ", ".join(_quoted(c) for c in CANONICAL_COLUMNS[source.name] if c != key)
    value = f"CASE WHEN _raw_text IS NULL THEN sha256(to_json(list_value({others}))) END"
    return f"SELECT * REPLACE ({value} AS {_quoted(key)}) FROM ({sql})"


def _try_casts(text: str) -> str:
    """The expression (already checked by the SQL guard) with every CAST a TRY_CAST."""
    tree = sqlglot.parse_one(text, dialect="duckdb")
    tree = tree.transform(lambda n: exp.TryCast(this=n.this, to=n.args["to"]) if type(n) is exp.Cast else n)
    return tree.sql(dialect="duckdb")


def _constant_text(value: str | bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
