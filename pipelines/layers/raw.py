"""Raw data: each source's landing files for a day, as they came, in the lake."""

import dagster as dg

from assets import raw
from assets.lake import connect
from assets.pyramid_map import SOURCE_NAMES
from pipelines.layers import partition_day, write_table
from pipelines.resources import PyramidResource


def build(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [_raw_asset(source, partitions) for source in SOURCE_NAMES]


def _raw_asset(source_name: str, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"raw_{source_name}",
        group_name="raw",
        partitions_def=partitions,
        kinds={"duckdb", "parquet"},
        description=f"The {source_name} landing files of the day, every row as it came, with its file and line.",
    )
    def _asset(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        source = pyramid.pyramid_map().sources[source_name]
        table = raw.land(connect(), lake, source, ds)
        return dg.MaterializeResult(metadata=write_table(lake, "raw", source_name, ds, table))

    return _asset
