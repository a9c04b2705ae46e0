"""Raw data: each source's landing files for a day, as they came, in the lake."""

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets import file_faults, raw
from assets.crash_points import crash_point
from assets.lake import connect
from assets.pyramid_map import SOURCE_NAMES
from pipelines.layers import lake_table, partition_day, write_table
from pipelines.resources import PyramidResource

PARSE_CHECK = "rows_parseable"


def parse_check(table: pa.Table) -> dg.AssetCheckResult:
    """Warn when landed lines did not parse (bad JSON, a CSV row with the wrong number of fields)."""
    rows = table.filter(pc.is_valid(table.column("_raw_text")))
    first = rows.select(["_source_file", "_source_line"]).slice(0, 5).to_pylist()
    where = [f"{r['_source_file']}:{r['_source_line']}" for r in first]
    return dg.AssetCheckResult(
        check_name=PARSE_CHECK, passed=rows.num_rows == 0, severity=dg.AssetCheckSeverity.WARN,
        metadata={"landed_rows": table.num_rows, "unparseable_rows": rows.num_rows,
                  "first_unparseable": ", ".join(where) or "none"},
    )


def build(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    return [_raw_asset(source, partitions) for source in SOURCE_NAMES]


def _raw_asset(source_name: str, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"raw_{source_name}",
        group_name="raw",
        partitions_def=partitions,
        kinds={"duckdb", "parquet"},
        metadata=lake_table("raw", source_name),
        description=f"The {source_name} landing files of the day, every row as it came, with its file and line.",
        check_specs=[dg.AssetCheckSpec(PARSE_CHECK, asset=f"raw_{source_name}",
                                       description="Every landed line parses as a row of the source's format; "
                                                   "those that do not are kept and quarantined as unparseable_row.")],
    )
    def _asset(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        source = pyramid.pyramid_map().sources[source_name]
        table = raw.land(connect(), lake, source, ds)
        file_faults.check_files(table, raw.landing_files(lake, source, ds), source)  # before anything is written
        metadata = write_table(lake, "raw", source_name, ds, table)
        crash_point("landing")
        return dg.MaterializeResult(metadata=metadata, check_results=[parse_check(table)])

    return _asset
