"""Metadata every materialization reports: rows, column schema, a preview and the path."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow as pa

PREVIEW_ROWS = 5


def table_metadata(table: pa.Table, path: Path, **extra) -> dict:
    return {
        "dagster/row_count": table.num_rows,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in table.schema]
        ),
        "path": dg.MetadataValue.path(str(path)),
        "preview": dg.MetadataValue.md(markdown_preview(table)),
        **extra,
    }


def markdown_preview(table: pa.Table, rows: int = PREVIEW_ROWS) -> str:
    if table.num_columns == 0:
        return "_(no columns)_"
    head = table.slice(0, rows).to_pylist()
    names = table.column_names
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(_cell(r[n]) for n in names) + " |" for r in head]
    if not head:
        lines.append("| " + " | ".join("" for _ in names) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 40 else text[:37] + "..."
