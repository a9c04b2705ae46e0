"""Contexts & campaigns: each campaign's audience as of the day, in treatment or holdout."""

import dagster as dg

from assets import campaigns
from assets.lake import connect, read_partition
from assets.snapshots import read_day
from pipelines.layers import lake_table, partition_day, write_snapshot
from pipelines.layers.ranges import each_day
from pipelines.resources import PyramidResource


def build(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        group_name="campaigns",
        partitions_def=partitions,
        deps=["segment_membership", "user_features"],
        kinds={"duckdb", "parquet"},
        metadata=lake_table("campaigns", "audiences"),
        description="For each campaign: the users of its segments that its contexts admit, and their stable arm.",
    )
    @each_day
    def campaign_audiences(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        declared = pyramid.pyramid_map().campaigns
        membership = read_partition(connect(), lake.partition_file("segments", "segment_membership", ds))
        features = None
        if campaigns.deciding_contexts(declared):
            features = read_day(lake, "actionable", "user_features", ds)
        audiences = campaigns.campaign_audiences(membership, declared, ds, features)
        con = connect()
        con.register("audiences", audiences)
        counts = con.sql("SELECT campaign_id || '/' || arm, count(*) FROM audiences GROUP BY 1 ORDER BY 1").fetchall()
        extra = {f"users/{key}": n for key, n in counts}
        for campaign_id, admitted in campaigns.admitted_by_context(membership, audiences, declared).items():
            if admitted["admitted_share"] is not None:
                extra[f"context_admits/{campaign_id}"] = dg.MetadataValue.float(admitted["admitted_share"])
        start = pyramid.pyramid_map().start_date
        return dg.MaterializeResult(
            metadata=write_snapshot(lake, "campaigns", "audiences", ds, audiences, start, **extra)
        )

    return [campaign_audiences]
