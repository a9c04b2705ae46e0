"""Exports that sync: per touchpoint and day, the changes since the last export and a manifest.

Beside each full snapshot `touchpoints/<tp>/ds=<D>/part-0.parquet` (assets/touchpoints.py) the day gets
(docs/contracts.md, "Exports that sync"):

- the delta `touchpoints/<tp>_delta/ds=<D>/part-0.parquet`, one row per user whose export row changed
  since the previous day's snapshot (D - 1; every row `entered` on the program's first day):
  `entered` (in D, not in D - 1: the row as of D), `exited` (in D - 1, not in D: the row as of D - 1),
  `changed` (in both, another campaign or priority: the row as of D). Rows are compared on every
  column but `as_of`. Applying it: drop the users of `exited` and `changed` rows from the snapshot of
  D - 1, add the `entered` and `changed` rows, set `as_of` = D; the result is the snapshot of D
  (`apply_delta`, the contract the tests check over every day of a run);
- the manifest `touchpoints/<tp>/ds=<D>/manifest.json`: counts, each file's SHA-256, the schema, the
  rows per campaign and the map version (SHA-256 of the map file). No user ids, no timestamps of its
  own: re-running a day rewrites the same bytes;
- with `format: csv` on the touchpoint in the map, CSV copies of both (`snapshot.csv`, `delta.csv`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow as pa

from assets.touchpoints import EXPORT_SCHEMA

FORMATS = ("parquet", "csv")
CHANGES = ("entered", "exited", "changed")
DELTA_SCHEMA = pa.schema([*EXPORT_SCHEMA, ("change", pa.string())])
_COMPARED = [n for n in EXPORT_SCHEMA.names if n != "as_of"]


def export_delta(previous: pa.Table | None, current: pa.Table, as_of: date) -> pa.Table:
    """The rows that changed between the previous snapshot (None: nothing exported yet) and this one."""
    now = pl.from_arrow(current.select(EXPORT_SCHEMA.names).cast(EXPORT_SCHEMA))
    before = (
        pl.from_arrow(previous.select(EXPORT_SCHEMA.names).cast(EXPORT_SCHEMA)) if previous is not None else now.clear()
    )
    entered = now.join(before, on="user_id", how="anti").with_columns(change=pl.lit("entered"))
    exited = before.join(now, on="user_id", how="anti").with_columns(change=pl.lit("exited"))
    changed = (
        now.join(before.select(_COMPARED), on="user_id", how="inner", suffix="_before")
        .filter(pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}_before")) for c in _COMPARED if c != "user_id"))
        .select(EXPORT_SCHEMA.names)
        .with_columns(change=pl.lit("changed"))
    )
    delta = pl.concat([entered, exited, changed]).sort(["user_id", "change"])
    return delta.to_arrow().cast(DELTA_SCHEMA)


def apply_delta(previous: pa.Table | None, delta: pa.Table, as_of: date) -> pa.Table:
    """The snapshot of `as_of` from the previous one and the day's delta, sorted by user."""
    changes = pl.from_arrow(delta)
    before = (
        pl.from_arrow(previous.select(EXPORT_SCHEMA.names).cast(EXPORT_SCHEMA))
        if previous is not None
        else pl.from_arrow(EXPORT_SCHEMA.empty_table())
    )
    gone = changes.filter(pl.col("change").is_in(["exited", "changed"])).select("user_id")
    added = changes.filter(pl.col("change").is_in(["entered", "changed"])).select(EXPORT_SCHEMA.names)
    kept = before.join(gone, on="user_id", how="anti")
    result = pl.concat([kept, added]).with_columns(as_of=pl.lit(as_of, pl.Date)).sort("user_id")
    return result.to_arrow().cast(EXPORT_SCHEMA)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def csv_text(table: pa.Table) -> str:
    """The table as CSV (header, ISO dates, empty for null), written the same way every time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow(["" if v is None else v.isoformat() if isinstance(v, date) else v for v in row.values()])
    return buffer.getvalue()


def manifest(
    touchpoint_id: str,
    channel: str,
    export_format: str,
    as_of: date,
    snapshot: pa.Table,
    delta: pa.Table,
    files: dict[str, Path],
    root: Path,
    map_version: str,
) -> dict:
    """What a sync tool reads first: counts, checksums, schema, campaigns, map version (aggregates only)."""
    changes = pl.from_arrow(delta.select(["change"]))["change"].value_counts()
    counted = {c: int(n) for c, n in changes.iter_rows()}
    campaigns = pl.from_arrow(snapshot.select(["campaign_id"]))["campaign_id"].value_counts().sort("campaign_id")
    return {
        "touchpoint_id": touchpoint_id,
        "channel": channel,
        "as_of": as_of.isoformat(),
        "format": export_format,
        "map_version": map_version,
        "counts": {"rows": snapshot.num_rows, **{c: counted.get(c, 0) for c in CHANGES}},
        "campaigns": {c: int(n) for c, n in campaigns.iter_rows()},
        "schema": {
            name: [{"name": f.name, "type": str(f.type)} for f in schema]
            for name, schema in (("snapshot", EXPORT_SCHEMA), ("delta", DELTA_SCHEMA))
        },
        "files": {
            name: {"path": path.relative_to(root).as_posix(), "sha256": sha256_file(path)}
            for name, path in sorted(files.items())
        },
    }


def manifest_text(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def map_version(map_path: Path) -> str:
    """The map's version: SHA-256 of the map file's bytes."""
    return sha256_file(map_path)


def check_format(touchpoint_id: str, export_format: str) -> None:
    if export_format not in FORMATS:
        raise ValueError(
            f"touchpoints[{touchpoint_id}].format must be one of {', '.join(FORMATS)}, got {export_format!r}"
        )
