"""Exports that sync: per touchpoint and day, the delta since the previous export and a manifest
(assets/exports.py; layout in docs/contracts.md)."""

from datetime import date

import dagster as dg
import pyarrow.compute as pc

from assets import exports
from assets.lake import Lake, connect, read_partition, write_text_atomic
from assets.pyramid_map import PyramidMap, Touchpoint
from assets.touchpoints import EXPORT_SCHEMA
from pipelines.layers import lake_table, partition_day, previous_partition, write_table
from pipelines.layers.ranges import each_day
from pipelines.resources import PyramidResource


def delta_table(touchpoint_id: str) -> str:
    return f"{touchpoint_id}_delta"


def build(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    for tp in pyramid_map.touchpoints:
        exports.check_format(tp.id, tp.format)
    specs = [
        dg.AssetSpec(
            f"touchpoint_{tp.id}_delta",
            group_name="touchpoints",
            kinds={"polars", "parquet"},
            deps=[f"touchpoint_{tp.id}"],
            metadata=lake_table("touchpoints", delta_table(tp.id)),
            description=f"Users entered, exited or changed on {tp.id} since the previous day's export, "
            "and the export's manifest (counts, checksums, schema, campaigns, map version).",
        )
        for tp in pyramid_map.touchpoints
    ]

    checks = [
        dg.AssetCheckSpec(
            "delta_rebuilds_snapshot",
            asset=f"touchpoint_{tp.id}_delta",
            description="The stored delta applied to the previous stored snapshot gives the stored snapshot, "
            "read back from disk: what a sync tool that applies adds and removes ends up with.",
        )
        for tp in pyramid_map.touchpoints
    ]

    @dg.multi_asset(
        name="touchpoint_deltas", specs=specs, check_specs=checks, partitions_def=partitions, can_subset=False
    )
    @each_day
    def touchpoint_deltas(context: dg.AssetExecutionContext, pyramid: PyramidResource):
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        version = exports.map_version(pmap.path)
        for tp in pmap.touchpoints:
            key = f"touchpoint_{tp.id}_delta"
            yield dg.MaterializeResult(asset_key=key, metadata=sync_export(lake, tp, ds, pmap.start_date, version))
            yield delta_check(lake, tp, ds, pmap.start_date, key)

    return [touchpoint_deltas]


def delta_check(lake: Lake, tp: Touchpoint, ds: date, start: date, asset_key: str) -> dg.AssetCheckResult:
    """Re-read the day's delta, the previous snapshot and the snapshot from disk and apply the delta."""
    snapshot = read_partition(connect(), lake.partition_file("touchpoints", tp.id, ds)).select(EXPORT_SCHEMA.names)
    delta = read_partition(connect(), lake.partition_file("touchpoints", delta_table(tp.id), ds))
    previous = previous_partition(lake, "touchpoints", tp.id, ds, start)
    rebuilt = exports.apply_delta(previous, delta.select(exports.DELTA_SCHEMA.names), ds)
    expected = snapshot.cast(EXPORT_SCHEMA).sort_by("user_id")
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="delta_rebuilds_snapshot",
        passed=rebuilt.equals(expected),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"snapshot_rows": expected.num_rows, "rebuilt_rows": rebuilt.num_rows},
    )


def sync_export(lake: Lake, tp: Touchpoint, ds: date, start: date, map_version: str) -> dict:
    """Write the day's delta, the CSV copies when asked, and the manifest; return the delta's metadata."""
    snapshot_path = lake.partition_file("touchpoints", tp.id, ds)
    snapshot = read_partition(connect(), snapshot_path).select(EXPORT_SCHEMA.names)  # without the hive `ds`
    previous = previous_partition(lake, "touchpoints", tp.id, ds, start)
    delta = exports.export_delta(previous, snapshot, ds)
    found = {r["values"]: r["counts"] for r in pc.value_counts(delta.column("change")).to_pylist()}
    counts = {c: found.get(c, 0) for c in exports.CHANGES}
    metadata = write_table(lake, "touchpoints", delta_table(tp.id), ds, delta, **counts)
    files = {"snapshot": snapshot_path, "delta": lake.partition_file("touchpoints", delta_table(tp.id), ds)}
    if tp.format == "csv":
        for name, table in (("snapshot_csv", snapshot), ("delta_csv", delta)):
            files[name] = write_text_atomic(exports.csv_text(table), snapshot_path.parent / f"{name[:-4]}.csv")
    manifest = exports.manifest(tp.id, tp.channel, tp.format, ds, snapshot, delta, files, lake.root, map_version)
    manifest_path = write_text_atomic(exports.manifest_text(manifest), snapshot_path.parent / "manifest.json")
    metadata["manifest"] = dg.MetadataValue.path(str(manifest_path))
    return metadata
