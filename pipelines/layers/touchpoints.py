"""Touchpoints: one activation export per touchpoint, after priorities and frequency caps, and a
check that each touchpoint's freshness need is met: the age of the newest activity the export reflects
(measured from the day's user_daily partition) plus the nightly schedule's delay."""

from datetime import date, datetime

import dagster as dg
import pyarrow as pa

from assets import touchpoints
from assets.lake import Lake, connect, read_partitions
from assets.pyramid_map import PyramidMap
from assets.snapshots import read_day
from pipelines.layers import lake_table, lookback_days, partition_day, write_table
from pipelines.layers.order import earlier_days
from pipelines.layers.ranges import each_day
from pipelines.resources import PyramidResource

FRESHNESS_CHECK = "freshness_met"
SCHEDULE_INTERVAL_HOURS = 24
EXPECTED_RUN_HOURS = 1  # the nightly run finishes within an hour of its start on the sample's scale
REACH_TABLES = ("channel_suppressions", "marketing_consent")  # actionable tables that say who may be reached


def build(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    ids = [t.id for t in pyramid_map.touchpoints]
    # The caps count every touchpoint's exports of the days a frequency cap still covers. Each export declares
    # only its own earlier days: the exports are one step, and deps between them would be a cycle to Dagster.
    capped_days = longest_cap_days(pyramid_map) - 1
    specs = [
        dg.AssetSpec(
            f"touchpoint_{tp.id}",
            group_name="touchpoints",
            kinds={"polars", "parquet"},
            deps=["campaign_audiences", *REACH_TABLES, *earlier_days(f"touchpoint_{tp.id}", capped_days)],
            metadata=lake_table("touchpoints", tp.id),
            description=f"Users to reach on {tp.id} ({tp.channel}) today, one campaign each; nobody suppressed "
            "on the channel or, on a marketing channel, without marketing consent.",
        )
        for tp in pyramid_map.touchpoints
    ]
    check_specs = [
        dg.AssetCheckSpec(
            FRESHNESS_CHECK,
            asset=f"touchpoint_{tp_id}",
            description="The newest activity the export reflects, plus the nightly schedule's delay, "
            "is within the touchpoint's freshness_hours.",
        )
        for tp_id in ids
    ]

    @dg.multi_asset(
        name="touchpoint_exports",
        specs=specs,
        check_specs=check_specs,
        partitions_def=partitions,
        can_subset=False,
    )
    @each_day
    def touchpoint_exports(context: dg.AssetExecutionContext, pyramid: PyramidResource):
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        audiences = read_day(lake, "campaigns", "audiences", ds)
        previous = previous_exports(lake, pmap, ds)
        exports = touchpoints.touchpoint_exports(
            audiences, pmap.campaigns, pmap.touchpoints, previous, ds, reach(lake, pmap, ds)
        )
        freshness = {
            r["touchpoint_id"]: r
            for r in touchpoints.measured_freshness(
                pmap.touchpoints, newest_activity(lake, ds), ds, SCHEDULE_INTERVAL_HOURS, run_allowance_hours(pmap)
            )
        }
        for tp_id in ids:
            yield dg.MaterializeResult(
                asset_key=f"touchpoint_{tp_id}",
                metadata=write_table(lake, "touchpoints", tp_id, ds, exports[tp_id]),
            )
            report = freshness[tp_id]
            yield dg.AssetCheckResult(
                asset_key=f"touchpoint_{tp_id}",
                check_name=FRESHNESS_CHECK,
                passed=bool(report["ok"]),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={k: v for k, v in report.items() if isinstance(v, (int, float, str)) and k != "ok"},
            )

    return [touchpoint_exports]


def reach(lake: Lake, pyramid_map: PyramidMap, ds: date) -> touchpoints.Reach:
    """Who may be reached on the day: its suppressions, marketing consents and the map's marketing channels."""
    suppressions, consent = (read_day(lake, "actionable", t, ds) for t in REACH_TABLES)
    return touchpoints.Reach(suppressions, consent, tuple(pyramid_map.consent.marketing_channels))


def run_allowance_hours(pyramid_map: PyramidMap) -> float:
    """Hours from the end of a partition day until its exports are ready: the run's start plus its length."""
    hour, minute = pyramid_map.run_at
    return hour + minute / 60 + EXPECTED_RUN_HOURS


def newest_activity(lake: Lake, ds: date) -> datetime | None:
    """The newest activity instant in the user_daily partition of `ds` (what the day's segments, audiences
    and exports were built from); None when the partition is missing or holds no activity."""
    path = lake.partition_file("actionable", "user_daily", ds)
    if not path.exists():
        return None
    sql = "SELECT greatest(max(last_seen_at), max(last_txn_at)) FROM read_parquet(?)"  # greatest skips NULLs
    return connect().sql(sql, params=[str(path)]).fetchall()[0][0]


def previous_exports(lake: Lake, pyramid_map: PyramidMap, ds: date) -> pa.Table | None:
    """Every touchpoint's exports of the days a frequency cap can still count."""
    days = lookback_days(ds, longest_cap_days(pyramid_map) - 1, pyramid_map.start_date)
    con = connect()
    tables = [read_partitions(con, lake, "touchpoints", tp.id, days) for tp in pyramid_map.touchpoints]
    tables = [t for t in tables if t is not None and t.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="default")


def longest_cap_days(pyramid_map: PyramidMap) -> int:
    """The longest frequency-cap period: a day's exports count the exports of that many days (itself included)."""
    return max((c.frequency_cap.per_days for c in pyramid_map.campaigns), default=1)
