"""The analyst catalog, rebuilt after every partition so analysts always query the latest lake."""

import dagster as dg

from assets.catalog import build_catalog
from assets.pyramid_map import PyramidMap
from pipelines.resources import PyramidResource


def build(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    touchpoint_assets = [f"touchpoint_{t.id}" for t in pyramid_map.touchpoints]

    @dg.asset(
        group_name="catalog", partitions_def=partitions, kinds={"duckdb"},
        deps=["north_star_series", "segment_summary", "segment_overlap", "segment_baselines", *touchpoint_assets],
        description="data/warehouse.duckdb: views over the lake for analysts, swapped in atomically.",
    )
    def analyst_catalog(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake = pyramid.lake()
        views = build_catalog(lake, [t.id for t in pyramid.pyramid_map().touchpoints])
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(str(lake.warehouse)),
            "views": ", ".join(views),
            "open_with": f"duckdb -readonly {lake.warehouse}",
        })

    return [analyst_catalog]
