"""The Great Expectations suites in Dagster: two checks per suite, the day's Data Docs, and what a
withheld column blocks upward. The validation itself is `assets/quality/`."""

from collections import Counter
from datetime import date
from pathlib import Path

import dagster as dg
import pyarrow as pa

from assets import actionable
from assets.crash_points import crash_point
from assets.lake import Lake, connect, read_partition
from assets.lineage import Blocked, blocked_by
from assets.pyramid_map import Actionable, PyramidMap
from assets.quality.data_docs import build_data_docs
from assets.quality.outcome import ValidationOutcome, column_status_table
from assets.quality.suites import peek_rules
from assets.quality.typed_batch import base_column
from assets.quality.validation import load_validations, save_validation
from pipelines.layers import lake_table, partition_day, write_table
from pipelines.layers.ranges import each_day
from pipelines.resources import PyramidResource

INPUTS_CHECK = "inputs_promoted"
SUITE_SOURCES = ("events", "transactions", "profiles")
ROWS_CHECK = "suite_rows_valid"
COLUMNS_CHECK = "suite_columns_promoted"
COLUMN_STATUS_ASSETS = [f"column_status_{source}" for source in SUITE_SOURCES]  # what `blocked_for_day` reads


def suite_specs(source: str) -> list[dg.AssetCheckSpec]:
    """Each suite's result as two checks (the suite is read without GX): its row expectations on
    `actionable_<source>`, which block downstream when a critical one fails (a spike of bad rows), and
    its column expectations on `column_status_<source>`, which do not (withholding the column is their
    handling; `inputs_promoted` blocks only what needs it).
    Two checks, not one per expectation: every check costs the run a dozen writes to Dagster's
    event log, and the per-expectation figures are in the checks' metadata table."""
    rules = peek_rules(source)

    def listing(decides: str) -> str:
        return ", ".join(f"{r.check_name} ({r.severity})" for r in rules if r.decides == decides)

    return [
        dg.AssetCheckSpec(
            ROWS_CHECK,
            asset=f"actionable_{source}",
            blocking=True,
            description=f"Row expectations of expectations/{source}.json: {listing('row')}",
        ),
        dg.AssetCheckSpec(
            COLUMNS_CHECK,
            asset=f"column_status_{source}",
            description=f"Column expectations of expectations/{source}.json: {listing('column')}",
        ),
    ]


def rows_check(source: str, outcome: "ValidationOutcome", docs: str | None) -> dg.AssetCheckResult:
    return _suite_check(f"actionable_{source}", ROWS_CHECK, outcome, "row", docs)


def column_status_spec(source: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        f"column_status_{source}",
        group_name="actionable",
        deps=[f"raw_{source}"],
        kinds={"great_expectations", "parquet"},
        metadata=lake_table("actionable", f"column_status_{source}"),
        description=f"Per column expectation of expectations/{source}.json on the day's raw {source}: "
        "promoted, warned or withheld, and why.",
    )


def column_status_result(
    lake: Lake, source: str, ds: date, outcome: "ValidationOutcome", docs: str | None
) -> dg.MaterializeResult:
    """Write the day's column status table; its result carries the column expectations' check."""
    statuses = Counter(c.status for c in outcome.column_status)
    counts = {f"columns/{status}": statuses[status] for status in sorted(statuses)}
    table = column_status_table(outcome, source, ds)
    return dg.MaterializeResult(
        asset_key=f"column_status_{source}",
        metadata=write_table(lake, "actionable", f"column_status_{source}", ds, table, **counts),
        check_results=[_suite_check(f"column_status_{source}", COLUMNS_CHECK, outcome, "column", docs)],
    )


def _suite_check(
    asset_name: str, check_name: str, outcome: "ValidationOutcome", decides: str, docs: str | None
) -> dg.AssetCheckResult:
    summaries = {name: s for name, s in outcome.checks.items() if s["decides"] == decides}
    failed = {name: s for name, s in summaries.items() if not s["success"]}
    critical = [name for name, s in failed.items() if s["severity"] == "critical"]
    metadata = {
        "expectations": len(summaries),
        "failed": ", ".join(failed) or "none",
        "results": dg.MetadataValue.md(_expectations_table(summaries)),
        "unexpected_rows": sum(int(s.get("unexpected_count") or 0) for s in summaries.values()),
    }
    if docs:
        metadata["data_docs"] = dg.MetadataValue.path(docs)
    return dg.AssetCheckResult(
        asset_key=asset_name,
        check_name=check_name,
        passed=not failed,
        metadata=metadata,
        severity=dg.AssetCheckSeverity.ERROR if critical else dg.AssetCheckSeverity.WARN,
    )


def _expectations_table(summaries: dict[str, dict]) -> str:
    lines = [
        "| expectation | severity | decides | unexpected | % | mostly | observed | passed | sample |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        decided = s.get("reason") or s.get("status") or ""
        pct = s.get("unexpected_percent")
        sample = ", ".join(str(v) for v in (s.get("sample_unexpected") or [])[:3])
        sample = "(masked)" if s.get("samples_masked") else sample
        lines.append(
            f"| {name} | {s['severity']} | {decided} | {s.get('unexpected_count', '')} | "
            f"{'' if pct is None else f'{pct:.3f}'} | {s.get('mostly', '')} | {_short(s.get('observed_value'))} | "
            f"{'yes' if s['success'] else '**no**'} | {sample.replace('|', '/')} |"
        )
    return "\n".join(lines)


def _short(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 30 else text[:27] + "..."


def validation_file(lake: Lake, source: str, ds: date) -> Path:
    return lake.reports / "validations" / source / f"{ds.isoformat()}.json"


def data_docs_index(lake: Lake) -> Path:
    return lake.reports / "data_docs" / "index.html"


def validate_and_record(
    lake: Lake, source: str, ds: date, raw: pa.Table | Path, settings: Actionable
) -> tuple["ValidationOutcome", str]:
    """Validate the day's raw rows and save the result for Data Docs (the column status is written by
    `column_status_result`)."""
    outcome = actionable.validate(raw, source, ds, settings)
    save_validation(outcome, validation_file(lake, source, ds))
    crash_point("validation")
    return outcome, str(data_docs_index(lake))


def data_quality_docs_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """One Data Docs build per day for all sources: a build costs most of a second whatever its size."""

    @dg.asset(
        name="data_quality_docs",
        group_name="actionable",
        partitions_def=partitions,
        kinds={"great_expectations"},
        deps=[f"actionable_{source}" for source in SUITE_SOURCES],
        description="Great Expectations Data Docs for the day's validations: data/reports/data_docs/index.html.",
    )
    @each_day
    def _asset(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        files = [f for f in (validation_file(lake, source, ds) for source in SUITE_SOURCES) if f.exists()]
        index = build_data_docs(
            load_validations(files), data_docs_index(lake).parent, pii=pyramid.pyramid_map().actionable.pii
        )
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(index)), "validations": len(files)})

    return _asset


def suite_metadata(result: actionable.CleanResult, docs: str) -> dict:
    outcome = result.validation
    return {
        "withheld_columns": ", ".join(result.withheld) or "none",
        "warned_columns": ", ".join(
            sorted({base_column(c.column) for c in outcome.column_status if c.status == "warned"})
        )
        or "none",
        "data_docs": dg.MetadataValue.path(docs),
        "validation_seconds": round(sum(outcome.timings.values()), 3),
    }


def withheld_for_day(lake: Lake, ds: date) -> list[tuple[str, str, str]]:
    """(source, column, expectation) withheld on `ds`, from the column status tables (no GX)."""
    withheld = []
    for source in SUITE_SOURCES:
        path = lake.partition_file("actionable", f"column_status_{source}", ds)
        if path.exists():
            table = read_partition(connect(), path)
            withheld += [
                (r["source"], r["column"], r["expectation"]) for r in table.to_pylist() if r["status"] == "withheld"
            ]
    return withheld


def blocked_for_day(lake: Lake, pyramid_map: PyramidMap, ds: date) -> "Blocked":
    """What the columns withheld on `ds` block upward (segments, campaigns, goals, metrics)."""
    return blocked_by(pyramid_map, withheld_for_day(lake, ds))


def inputs_check(blocked: "Blocked") -> dg.AssetCheckResult:
    metadata = {"withheld": ", ".join(blocked.columns) or "none"}
    for kind in ("segments", "campaigns", "goals", "metrics"):
        items = getattr(blocked, kind)
        metadata[f"blocked_{kind}"] = ", ".join(f"{k} ({'; '.join(v)})" for k, v in items.items()) or "none"
    return dg.AssetCheckResult(
        check_name=INPUTS_CHECK,
        passed=not blocked,
        metadata=metadata,
        severity=dg.AssetCheckSeverity.ERROR,
        description=blocked.describe(),
    )
