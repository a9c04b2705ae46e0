"""user_daily from the map's measures: one DuckDB pass per source (one GROUP BY user_id, day with a FILTER
clause per measure), the sources joined FULL OUTER on (user_id, activity_date).

A row of a source counts towards a user-day when it passes the `where` of at least one measure; a user-day
without such a row has no user_daily row. A filter conjunct shared by every measure of a source moves to the
pass's WHERE (the transactions' `status = 'completed'`), so the pass reads only the rows that count.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from assets.contract import MEASURE_SOURCES, SCHEMAS, TIME_COLUMN, UTC
from assets.sql_guard import expression_columns

if TYPE_CHECKING:  # pragma: no cover - typing only
    from assets.pyramid_map import PyramidMap
    from assets.pyramid_map.measures import Measure

KEYS = ["user_id", "activity_date"]


def exact_money(expression: str) -> str:
    """Money is summed as a decimal: a parallel sum of doubles depends on the order of the rows, and
    re-running a partition must give the same bytes."""
    return f"CAST({expression} AS DECIMAL(38, 4))"


def utc_date(column: str) -> str:
    return f"CAST(timezone('UTC', {column}) AS DATE)"


def measure_type(measure: Measure) -> pa.DataType:
    """The user_daily type of a measure's value column."""
    if measure.agg in ("count", "count_distinct"):
        return pa.int64()
    if measure.agg == "sum":
        return pa.float64()
    schema = SCHEMAS[measure.source]  # a min, max or last measure keeps its column's actionable type
    return schema.field(measure.column).type if measure.column in schema.names else pa.string()


def daily_columns(measures: dict[str, Measure]) -> list[str]:
    """user_daily's columns: the keys, then each measure's columns in declaration order."""
    return [*KEYS, *(c for m in measures.values() for c in m.columns())]


def daily_schema(measures: dict[str, Measure]) -> pa.Schema:
    fields = [("user_id", pa.string()), ("activity_date", pa.date32())]
    for m in measures.values():
        fields += [(f"{m.name}_at", UTC)] if m.agg == "last" else []
        fields.append((m.name, measure_type(m)))
    return pa.schema(fields)


def summable_columns(measures: dict[str, Measure]) -> list[str]:
    """The user_daily columns a sum over days means something for (metric conditions, windowed sums)."""
    return [m.name for m in measures.values() if m.summable]


def source_columns(measures: Iterable[Measure], source: str) -> list[str]:
    """The columns of `source` the pass reads: user, time, and those the measures' columns and filters name."""
    columns = ["user_id", TIME_COLUMN]
    for m in measures:
        if m.source == source:
            columns += [m.column] if m.column else []
            columns += expression_columns(m.where) if m.where else []
    return list(dict.fromkeys(columns))


def _conjuncts(where: str) -> list[str]:
    """The top-level AND terms of a filter, as DuckDB SQL ([] for no filter)."""
    if not where:
        return []
    tree = sqlglot.parse_one(where, dialect="duckdb")
    tree = tree.unnest() if isinstance(tree, exp.Paren) else tree
    return [term.sql(dialect="duckdb") for term in (tree.flatten() if isinstance(tree, exp.And) else [tree])]


def _split_filters(measures: list[Measure]) -> tuple[str, dict[str, str]]:
    """(the pass's WHERE, measure -> its remaining FILTER): the conjuncts every filter shares go to WHERE;
    when every measure has a filter, WHERE is also the OR of the remaining ones (rows no measure counts)."""
    terms = {m.name: _conjuncts(m.where) for m in measures}
    shared = [t for t in next(iter(terms.values()), []) if all(t in ts for ts in terms.values())]
    rest = {name: " AND ".join(t for t in ts if t not in shared) for name, ts in terms.items()}
    where = [*shared]
    if all(rest.values()):
        where.append(" OR ".join(f"({r})" for r in dict.fromkeys(rest.values())))
    return " AND ".join(f"({w})" for w in where), rest


def _aggregate_sql(m: Measure, condition: str) -> list[str]:
    flt = f" FILTER (WHERE {condition})" if condition else ""
    if m.agg == "count":
        return [f"count(*){flt} AS {m.name}"]
    if m.agg == "count_distinct":
        return [f"count(DISTINCT {m.column}){flt} AS {m.name}"]
    if m.agg == "sum":
        return [f"coalesce(sum({exact_money(m.column)}){flt}, 0)::DOUBLE AS {m.name}"]
    if m.agg in ("min", "max"):
        return [f"{m.agg}({m.column}){flt} AS {m.name}"]
    # last: the value of the latest row, the greatest value on a tie
    return [
        f"max({TIME_COLUMN}){flt} AS {m.name}_at",
        f"arg_max({m.column}, ({TIME_COLUMN}, {m.column})){flt} AS {m.name}",
    ]


def source_pass_sql(measures: dict[str, Measure], source: str, relation: str) -> str:
    """The one GROUP BY pass computing every measure of `source` over `relation`."""
    mine = [m for m in measures.values() if m.source == source]
    where, filters = _split_filters(mine)
    aggregates = ",\n               ".join(a for m in mine for a in _aggregate_sql(m, filters[m.name]))
    return f"""
        SELECT user_id, {utc_date(TIME_COLUMN)} AS activity_date,
               {aggregates}
        FROM {relation} {f"WHERE {where}" if where else ""} GROUP BY ALL
    """


def user_daily_sql(measures: dict[str, Measure], relations: dict[str, str]) -> str:
    """user_daily's statement over `relations` (source -> relation name) of the sources with measures."""
    passes = [f"({source_pass_sql(measures, s, relations[s])}) AS {s}" for s in MEASURE_SOURCES if s in relations]
    select = ", ".join(_filled(measures.get(name), name) for name in daily_columns(measures))
    joined = " FULL OUTER JOIN ".join(
        p if i == 0 else f"{p} USING (user_id, activity_date)" for i, p in enumerate(passes)
    )
    return f"SELECT {select} FROM {joined} ORDER BY user_id, activity_date"


def _filled(measure: Measure | None, name: str) -> str:
    """A column of the joined passes: a count or sum zero-filled (a user-day may come from the other source)."""
    if measure is not None and measure.agg in ("count", "count_distinct"):
        return f"coalesce({name}, 0)::BIGINT AS {name}"
    if measure is not None and measure.agg == "sum":
        return f"coalesce({name}, 0)::DOUBLE AS {name}"
    return name


def user_daily(
    con: duckdb.DuckDBPyConnection, pyramid_map: PyramidMap, events: pa.Table, transactions: pa.Table
) -> pa.Table:
    """Per user and UTC activity day, over one landing partition's actionable events and transactions: the
    map's measures (docs/contracts.md, "Measures and features"), columns `daily_columns`, ordered by user_id,
    activity_date. Counts are BIGINT (0 when none), sums DOUBLE (0.0), min/max/last of the column's type."""
    measures = pyramid_map.measures
    tables = {"events": events, "transactions": transactions}
    relations = {s: f"_daily_{s}" for s in MEASURE_SOURCES if any(m.source == s for m in measures.values())}
    for source, relation in relations.items():
        con.register(relation, tables[source].select(source_columns(measures.values(), source)))
    try:
        return con.sql(user_daily_sql(measures, relations)).to_arrow_table().cast(daily_schema(measures))
    finally:
        for relation in relations.values():
            con.unregister(relation)
