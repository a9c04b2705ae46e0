"""Raw data: each source's landing files for a day, as they came, in the lake; the day stops when a
required source has no file, and each source's volume and late files are checked."""

import math
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from assets import feeds, file_faults, landing, raw
from assets.crash_points import crash_point
from assets.lake import Lake, connect
from assets.pyramid_map import NOT_DECLARED_NOTE, SOURCE_NAMES, PyramidMap, Source
from pipelines.layers import lake_table, partition_day, write_table
from pipelines.layers.ranges import each_day
from pipelines.resources import PyramidResource

PARSE_CHECK = "rows_parseable"
VOLUME_CHECK = "volume_within_tolerance"
LATE_CHECK = "no_late_files"


def parse_check(table: pa.Table) -> dg.AssetCheckResult:
    """Warn when landed lines did not parse (bad JSON, a CSV row with the wrong number of fields)."""
    rows = table.filter(pc.is_valid(table.column("_raw_text")))
    first = rows.select(["_source_file", "_source_line"]).slice(0, 5).to_pylist()
    where = [f"{r['_source_file']}:{r['_source_line']}" for r in first]
    return dg.AssetCheckResult(
        check_name=PARSE_CHECK,
        passed=rows.num_rows == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "landed_rows": table.num_rows,
            "unparseable_rows": rows.num_rows,
            "first_unparseable": ", ".join(where) or "none",
        },
    )


def volume_check(lake: Lake, source: Source, ds: date, rows: int) -> dg.AssetCheckResult:
    """The day's rows against the trailing median; an error (blocking) when the map says `action: block`."""
    volume = source.volume
    verdict = feeds.volume_verdict(lake, source.name, ds, rows, volume)
    severity = dg.AssetCheckSeverity.ERROR if volume.action == "block" else dg.AssetCheckSeverity.WARN
    metadata = {
        "rows": rows,
        "previous_landed_days": verdict.history_days,
        "tolerance": volume.tolerance,
        "action": volume.action,
    }
    if verdict.median is not None:
        metadata["trailing_median"] = verdict.median
    if verdict.deviation is not None and math.isfinite(verdict.deviation):
        metadata["deviation"] = verdict.deviation
    return dg.AssetCheckResult(
        check_name=VOLUME_CHECK,
        passed=verdict.passed,
        severity=severity,
        metadata=metadata,
        description=verdict.describe(volume),
    )


def late_check(lake: Lake, source: Source, ds: date) -> dg.AssetCheckResult:
    """Warn, naming the days to re-run, when landing files arrived or changed for days already processed."""
    late = feeds.late_files(lake, source, skip=ds)
    metadata = {
        "days_to_rerun": ", ".join(str(d) for d in sorted(late)) or "none",
        "late_files": sum(len(files) for files in late.values()),
    }
    if late:
        metadata["rerun_from"] = str(min(late))
    return dg.AssetCheckResult(
        check_name=LATE_CHECK,
        passed=not late,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=feeds.rerun_advice(late),
    )


def landed_in_run(context: dg.AssetExecutionContext, pyramid_map: PyramidMap) -> list[Source]:
    """The sources whose raw asset this run materializes (all of them in the nightly job)."""
    selected = context.run.asset_selection  # None or empty: the whole job
    return [s for s in pyramid_map.sources.values() if not selected or dg.AssetKey(f"raw_{s.name}") in selected]


def build(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    return [_raw_asset(name, pyramid_map.sources.get(name), partitions) for name in SOURCE_NAMES]


def not_declared(lake: Lake, source_name: str, ds: date, pii: tuple[str, ...]) -> dg.MaterializeResult:
    """A source the map leaves out: an empty table in the contract's schema, no landing file looked for."""
    table = raw.raw_schema(source_name).empty_table()
    metadata = write_table(lake, "raw", source_name, ds, table, pii=pii, source=NOT_DECLARED_NOTE)
    checks = [
        dg.AssetCheckResult(check_name=check, passed=True, metadata={"landed_rows": 0}, description=NOT_DECLARED_NOTE)
        for check in (PARSE_CHECK, LATE_CHECK)
    ]
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


def _check_specs(source_name: str, source: Source | None) -> list[dg.AssetCheckSpec]:
    asset = f"raw_{source_name}"
    specs = [
        dg.AssetCheckSpec(
            PARSE_CHECK,
            asset=asset,
            description="Every landed line parses as a row of the source's format; "
            "those that do not are kept and quarantined as unparseable_row.",
        ),
        dg.AssetCheckSpec(
            LATE_CHECK,
            asset=asset,
            description="No landing file arrived or changed for a day already processed; "
            "otherwise names the days to re-run.",
        ),
    ]
    if source is not None and source.volume is not None:
        specs.append(
            dg.AssetCheckSpec(
                VOLUME_CHECK,
                asset=asset,
                blocking=source.volume.action == "block",
                description=f"The day's rows are within ±{source.volume.tolerance:.0%} of the median of the previous "
                f"{source.volume.window_days} landed days ({source.volume.action} beyond).",
            )
        )
    return specs


def _raw_asset(source_name: str, source: Source | None, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name=f"raw_{source_name}",
        group_name="raw",
        partitions_def=partitions,
        kinds={"duckdb", "parquet"},
        metadata=lake_table("raw", source_name),
        description=f"The {source_name} landing files of the day, every row as it came, with its file and line.",
        check_specs=_check_specs(source_name, source),
    )
    @each_day
    def _asset(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        if source_name not in pmap.sources:
            return not_declared(lake, source_name, ds, pmap.actionable.pii)
        source = pmap.sources[source_name]
        # each raw step stops: nothing of the day is written
        landing.require_feeds(lake, landed_in_run(context, pmap), ds)
        files = landing.landing_files(lake, source, ds)
        manifest = landing.landing_manifest(lake, files)  # before reading: a file changing meanwhile shows as late
        table = raw.land(connect(), lake, source, ds, files)
        file_faults.check_files(table, files, source)  # before anything is written
        file_faults.require_sound_files(lake, landed_in_run(context, pmap), ds, skip=source_name)
        absent = ", ".join(raw.absent_columns(source, files)) or "none"  # optional columns landed as NULL
        extra = {"landing_files": len(files), "absent_columns": absent}
        metadata = write_table(lake, "raw", source_name, ds, table, pii=pmap.actionable.pii, **extra)
        landing.write_manifest(lake, source_name, ds, manifest)
        crash_point("landing")
        checks = [parse_check(table), late_check(lake, source, ds)]
        if source.volume is not None:
            checks.append(volume_check(lake, source, ds, table.num_rows))
        return dg.MaterializeResult(metadata=metadata, check_results=checks)

    return _asset
