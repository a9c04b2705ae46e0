"""Erasure requests: the day's requests recorded (cumulative `erased_users`), the ones that cannot be
honoured quarantined with their reason, and a blocking check that stops the day naming file and line."""

from collections.abc import Iterator
from datetime import date

import dagster as dg
import pyarrow as pa

from assets import actionable, erasure_requests
from assets.lake import Lake, connect, read_partition
from pipelines.layers import lake_table, partition_day, previous_partition, reason_counts, write_table
from pipelines.layers.order import previous_day
from pipelines.layers.ranges import each_day
from pipelines.resources import PyramidResource

ERASURE_REQUESTS_CHECK = "erasure_requests_recorded"
QUARANTINE_TABLE = "quarantine_erasure_requests"


def erasure_requests_check(day: actionable.CleanResult) -> dg.AssetCheckResult:
    """Fails (ERROR, blocking) when a request could not be honoured; names each file:line, never a user id."""
    quarantined = day.quarantine.num_rows
    problems = erasure_requests.erasure_request_problems(day.quarantine)
    more = f" and {quarantined - len(problems)} more" if quarantined > len(problems) else ""
    description = (
        "every erasure request of the day was recorded"
        if not quarantined
        else f"{quarantined} erasure request(s) cannot be honoured, quarantined in actionable/{QUARANTINE_TABLE}: "
        f"{'; '.join(problems)}{more}. Correct the request at its source, then re-run the day"
    )
    return dg.AssetCheckResult(
        asset_key="actionable_erased_users",
        check_name=ERASURE_REQUESTS_CHECK,
        passed=quarantined == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "quarantined_requests": quarantined,
            "honoured_without_timestamp": int(day.details.get("bad_timestamp_honoured", 0)),
            "first_quarantined": ", ".join(problems) or "none",
        },
    )


def build(partitions: dg.PartitionsDefinition, start: date) -> dg.AssetsDefinition:
    """The erased users and the erasure requests' quarantine, one cleaning of the day's requests."""

    @dg.multi_asset(
        name="actionable_erased_users",
        partitions_def=partitions,
        can_subset=False,
        specs=[
            dg.AssetSpec(
                "actionable_erased_users",
                group_name="actionable",
                deps=["raw_erasure_requests", previous_day("actionable_erased_users")],
                kinds={"duckdb", "parquet"},
                metadata=lake_table("actionable", "erased_users"),
                description="Every user who asked to be erased, up to and including the day.",
            ),
            dg.AssetSpec(
                QUARANTINE_TABLE,
                group_name="actionable",
                deps=["raw_erasure_requests"],
                kinds={"duckdb", "parquet"},
                metadata=lake_table("actionable", QUARANTINE_TABLE),
                description="The day's erasure requests that cannot be honoured (no user id, or the "
                "line did not parse), with the file, the line and the reason.",
            ),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                ERASURE_REQUESTS_CHECK,
                asset="actionable_erased_users",
                blocking=True,
                description="Legal requests are never lost: a request that cannot be honoured stops the day, "
                "naming its file and line.",
            )
        ],
    )
    @each_day
    def actionable_erased_users(
        context: dg.AssetExecutionContext, pyramid: PyramidResource
    ) -> Iterator[dg.MaterializeResult]:
        lake, ds = pyramid.lake(), partition_day(context)
        con = connect()
        raw = read_partition(con, lake.partition_file("raw", "erasure_requests", ds))
        day = erasure_requests.clean_erasures(con, raw)
        previous = previous_partition(lake, "actionable", "erased_users", ds, start)
        erased = erasure_requests.update_erasures(con, raw, previous, day=day)
        figures = {k: v for k, v in day.accounting().items() if k != "balanced"}
        yield dg.MaterializeResult(
            asset_key="actionable_erased_users",
            metadata=write_table(lake, "actionable", "erased_users", ds, erased, **figures),
            check_results=[erasure_requests_check(day)],
        )
        yield dg.MaterializeResult(asset_key=QUARANTINE_TABLE, metadata=_quarantine_metadata(lake, ds, day.quarantine))

    return actionable_erased_users


def _quarantine_metadata(lake: Lake, ds: date, quarantine: pa.Table) -> dict:
    reasons = {f"quarantined/{reason}": n for reason, n in reason_counts(quarantine).items()}
    return write_table(lake, "actionable", QUARANTINE_TABLE, ds, quarantine, **reasons)
