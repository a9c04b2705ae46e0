"""Dagster assets, one module per pyramid layer. Each asset is thin: read its inputs from the lake,
call the layer's pure transform in `assets/`, write atomically, report metadata and checks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa

from assets.lake import Lake, write_parquet_atomic
from pipelines.metadata import table_metadata


def partition_day(context: dg.AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def write_table(lake: Lake, layer: str, table_name: str, ds: date, table: pa.Table, **extra) -> dict:
    """Write one partition atomically and return its materialization metadata."""
    path: Path = lake.partition_file(layer, table_name, ds)
    write_parquet_atomic(table, path)
    return table_metadata(table, path, **extra)
