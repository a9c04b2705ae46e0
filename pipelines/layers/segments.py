"""User segments: membership per as-of day from the map's rules, their summary and overlap."""

import dagster as dg

from assets import segments
from assets.lake import connect, read_partition
from assets.pyramid_map import PyramidMap
from pipelines.layers import partition_day, write_table
from pipelines.layers.actionable import previous_partition
from pipelines.resources import PyramidResource


def build(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    start = pyramid_map.start_date

    @dg.asset(
        group_name="segments", partitions_def=partitions, deps=["user_features"], kinds={"duckdb", "parquet"},
        description="Which eligible (consented, non-erased) users are in which segment as of the day.",
    )
    def segment_membership(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        features = read_partition(connect(), lake.partition_file("actionable", "user_features", ds))
        membership = segments.segment_membership(features, pyramid.pyramid_map().segments.definitions, ds)
        return dg.MaterializeResult(metadata=write_table(lake, "segments", "segment_membership", ds, membership))

    @dg.asset(
        group_name="segments", partitions_def=partitions, deps=["segment_membership", "user_features"],
        kinds={"duckdb", "parquet"},
        check_specs=[dg.AssetCheckSpec("segments_usable", asset="segment_summary",
                                       description="Every segment has at least its min_size members.")],
        description="Per segment: size, share of eligible users, usable or not, stability against the day before.",
    )
    def segment_summary(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        con = connect()
        membership = read_partition(con, lake.partition_file("segments", "segment_membership", ds))
        previous = previous_partition(lake, "segments", "segment_membership", ds, start)
        features = read_partition(con, lake.partition_file("actionable", "user_features", ds))
        eligible = int(con.sql("SELECT count(*) FROM features WHERE consent_personalization").fetchall()[0][0])
        summary = segments.segment_summary(membership, previous, eligible, pmap.segments.definitions, ds)
        unusable = [row["segment_id"] for row in summary.to_pylist() if not row["usable"]]
        check = dg.AssetCheckResult(
            check_name="segments_usable", passed=not unusable, severity=dg.AssetCheckSeverity.WARN,
            metadata={"unusable_segments": ", ".join(unusable) or "none"},
        )
        metadata = write_table(lake, "segments", "segment_summary", ds, summary, eligible_users=eligible)
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    @dg.asset(
        group_name="segments", partitions_def=partitions, deps=["segment_membership"], kinds={"duckdb", "parquet"},
        description="Pairs of segments: users in both and their Jaccard similarity.",
    )
    def segment_overlap(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        membership = read_partition(connect(), lake.partition_file("segments", "segment_membership", ds))
        overlap = segments.segment_overlap(membership, ds)
        return dg.MaterializeResult(metadata=write_table(lake, "segments", "segment_overlap", ds, overlap))

    return [segment_membership, segment_summary, segment_overlap]
