"""The analyst catalog, rebuilt after every partition so analysts always query the latest lake."""

from collections.abc import Sequence

import dagster as dg

from assets.catalog import CATALOG_VIEWS, build_catalog
from assets.pyramid_map import PyramidMap
from pipelines.layers import LAKE_TABLE
from pipelines.layers.ranges import each_day
from pipelines.resources import PyramidResource


def catalog_tables(pyramid_map: PyramidMap) -> list[str]:
    """Every `layer/table` a view of the catalog reads (the touchpoint exports view unions the map's touchpoints)."""
    tables = [f"{layer}/{table}" for sources in CATALOG_VIEWS.values() for layer, table in sources]
    return tables + [f"touchpoints/{t.id}" for t in pyramid_map.touchpoints]


def table_assets(assets_defs: Sequence[dg.AssetsDefinition]) -> dict[str, dg.AssetKey]:
    """`layer/table` -> the asset that writes it, from each spec's `lake_table` metadata."""
    return {spec.metadata[LAKE_TABLE]: spec.key for a in assets_defs for spec in a.specs if LAKE_TABLE in spec.metadata}


def catalog_deps(pyramid_map: PyramidMap, assets_defs: Sequence[dg.AssetsDefinition]) -> list[dg.AssetKey]:
    """The assets whose tables the catalog's views read; every view table must come from an asset."""
    writers = table_assets(assets_defs)
    missing = [t for t in catalog_tables(pyramid_map) if t not in writers]
    if missing:
        raise ValueError(f"catalog views read lake tables that no asset writes: {', '.join(missing)}")
    return list(dict.fromkeys(writers[t] for t in catalog_tables(pyramid_map)))


def build(
    partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap, upstream: Sequence[dg.AssetsDefinition]
) -> list[dg.AssetsDefinition]:
    @dg.asset(
        group_name="catalog",
        partitions_def=partitions,
        kinds={"duckdb"},
        deps=catalog_deps(pyramid_map, upstream),
        description="data/warehouse.duckdb: views over the lake for analysts, swapped in atomically.",
    )
    @each_day
    def analyst_catalog(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake = pyramid.lake()
        views = build_catalog(lake, [t.id for t in pyramid.pyramid_map().touchpoints])
        return dg.MaterializeResult(
            metadata={
                "path": dg.MetadataValue.path(str(lake.warehouse)),
                "views": ", ".join(views),
                "open_with": f"duckdb -readonly {lake.warehouse}",
            }
        )

    return [analyst_catalog]
