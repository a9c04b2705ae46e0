"""Metadata every materialization reports: rows, column schema, a preview and the path.

The preview of a table of personal data (a user id, a PII column of the map or a raw record, see
`assets.privacy`) is a profile of its columns, never its rows: Dagster's storage holds no user id and
no PII."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets.lake import connect
from assets.privacy import holds_personal_data, is_private

PREVIEW_ROWS = 5
TOP_DISTINCT = 12  # a column with at most this many distinct values is categorical: its top values are shown
TOP_VALUES = 5


def table_metadata(table: pa.Table, path: Path, pii: Iterable[str] = (), **extra) -> dict:
    """Row count, schema, path and preview; `pii` names the map's PII columns (`actionable.pii`)."""
    return {
        "dagster/row_count": table.num_rows,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in table.schema]
        ),
        "path": dg.MetadataValue.path(str(path)),
        "preview": dg.MetadataValue.md(markdown_preview(table, pii=pii)),
        **extra,
    }


def column_lineage_metadata(inputs: dict[str, list[tuple[str, str]]]) -> dict[str, dg.TableColumnLineage]:
    """Dagster's column lineage (`dagster/column_lineage`): column -> the (asset, column) pairs it is computed from."""
    deps = {
        column: [dg.TableColumnDep(asset_key=dg.AssetKey(asset), column_name=name) for asset, name in pairs]
        for column, pairs in inputs.items()
    }
    return {"dagster/column_lineage": dg.TableColumnLineage(deps_by_column=deps)}


def markdown_preview(table: pa.Table, rows: int = PREVIEW_ROWS, pii: Iterable[str] = ()) -> str:
    """The first rows, or for a table of personal data a profile of its columns (`column_profile`)."""
    if table.num_columns == 0:
        return "_(no columns)_"
    pii = tuple(pii)
    if holds_personal_data(table.column_names, pii):
        return column_profile(table, pii)
    head = table.slice(0, rows).to_pylist()
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(r[n]) for n in names) + " |" for r in head]
    if not head:
        lines.append("| " + " | ".join("" for _ in names) + " |")
    return "\n".join(lines)


def column_profile(table: pa.Table, pii: Iterable[str] = ()) -> str:
    """One line per column: non-null and distinct counts, min and max of numbers and instants, and the
    top values of a categorical column that is neither an id nor personal. No value of a row otherwise."""
    pii = tuple(pii)
    lines = [
        f"_Personal data: a profile of the {table.num_rows:,} rows, no row shown._",
        "",
        "| column | type | non-null | distinct | min | max | top values |",
        "|---|---|---|---|---|---|---|",
    ]
    for field in table.schema:
        column = table.column(field.name)
        low, high = _min_max(column)
        distinct = _distinct(column)
        top = "" if is_private(field.name, pii) else _top_values(column, distinct)
        cells = [
            field.name,
            str(field.type),
            f"{pc.count(column).as_py():,}",
            "" if distinct is None else f"{distinct:,}",
            low,
            high,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + f" | {_cell(top, 100)} |")
    return "\n".join(lines)


def _min_max(column: pa.ChunkedArray) -> tuple[str, str]:
    kind = column.type
    if not (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_temporal(kind)
    ):
        return "", ""
    extremes = pc.min_max(column)
    return tuple(_text(extremes[key].as_py()) for key in ("min", "max"))  # type: ignore[return-value]


def _distinct(column: pa.ChunkedArray) -> int | None:
    kind = column.type
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_temporal(kind)
        or pa.types.is_integer(kind)
    ):
        return _distinct_counted(column)
    try:
        return pc.count_distinct(column, mode="only_valid").as_py()
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError):  # lists, structs
        return None


def _distinct_counted(column: pa.ChunkedArray) -> int:
    """`count_distinct(column, mode="only_valid")` in DuckDB, one column at a time: Arrow's hash of 4.7M distinct ids
    takes about 2 GB, and sorting them three times DuckDB's CPU for about the same memory (docs/benchmarks.md)."""
    con = connect()
    con.register("_profiled", pa.table({"value": column}))
    try:
        return int(con.sql("SELECT count(DISTINCT value) FROM _profiled").fetchall()[0][0])
    finally:
        con.unregister("_profiled")


def _top_values(column: pa.ChunkedArray, distinct: int | None) -> str:
    kind = column.type
    categorical = (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_dictionary(kind)
    )
    if not categorical or distinct is None or distinct == 0 or distinct > TOP_DISTINCT:
        return ""
    counts = pc.value_counts(column.drop_null()).to_pylist()
    counts.sort(key=lambda c: (-c["counts"], str(c["values"])))
    return ", ".join(f"{_text(c['values'])}: {c['counts']:,}" for c in counts[:TOP_VALUES])


def _text(value: object) -> str:
    if value is None:
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _cell(value: object, limit: int = 40) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
