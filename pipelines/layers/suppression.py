"""Channel suppression and marketing consent (assets/suppression.py): cumulative per-user tables of the
actionable layer that the touchpoint exports read, so that nobody is reached on a channel they left."""

from collections import Counter
from datetime import date

import dagster as dg
import pyarrow as pa

from assets import first_seen, suppression
from assets.lake import Lake, connect, read_partition
from assets.pyramid_map import PyramidMap
from assets.snapshots import read_day
from pipelines.layers import lake_table, partition_day, previous_partition, write_snapshot
from pipelines.layers.order import previous_day
from pipelines.layers.quality import withheld_for_day
from pipelines.layers.ranges import each_day
from pipelines.resources import PyramidResource

SUPPRESSIONS = "channel_suppressions"
MARKETING_CONSENT = "marketing_consent"


def _read(lake: Lake, table: str, ds: date) -> pa.Table:
    return read_partition(connect(), lake.partition_file("actionable", table, ds))


def _marketing_withheld(lake: Lake, column: str, ds: date) -> bool:
    return any(source == "profiles" and name == column for source, name, _ in withheld_for_day(lake, ds))


def build(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    start = pyramid_map.start_date

    @dg.asset(
        name=SUPPRESSIONS,
        group_name="actionable",
        partitions_def=partitions,
        kinds={"duckdb", "parquet"},
        deps=["actionable_events", "erasure_applied", previous_day(SUPPRESSIONS)],
        metadata=lake_table("actionable", SUPPRESSIONS),
        description="Who opted out of which channel, and since when (the map's consent.opt_out), cumulative: "
        "the touchpoint exports of the day and every later day leave them out.",
    )
    @each_day
    def channel_suppressions(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        previous = previous_partition(lake, "actionable", SUPPRESSIONS, ds, start)
        table = suppression.update_suppressions(
            connect(), _read(lake, "events", ds), previous, pmap.consent, pmap.touchpoints
        )
        added = table.num_rows - (previous.num_rows if previous is not None else 0)
        channels = Counter(table.column("channel").to_pylist())
        return dg.MaterializeResult(
            metadata=write_snapshot(
                lake,
                "actionable",
                SUPPRESSIONS,
                ds,
                table,
                start,
                new_today=added,
                **{f"channel/{channel}": n for channel, n in sorted(channels.items())},
            )
        )

    @dg.asset(
        name=MARKETING_CONSENT,
        group_name="actionable",
        partitions_def=partitions,
        kinds={"duckdb", "parquet"},
        deps=[
            "raw_profiles",
            "quarantine_profiles",
            "column_status_profiles",
            "erasure_applied",
            previous_day(MARKETING_CONSENT),
        ],
        metadata=lake_table("actionable", MARKETING_CONSENT),
        description="Each known user's marketing consent as of the day (the map's consent.marketing_column), "
        "which gates the map's consent.marketing_channels.",
    )
    @each_day
    def marketing_consent(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        column = pmap.consent.marketing_column
        previous = previous_partition(lake, "actionable", MARKETING_CONSENT, ds, start)
        if "profiles" not in pmap.sources:  # the map's consent default, for every known user
            known = read_day(lake, "actionable", "profiles", ds)
            table = first_seen.default_marketing_consent(known, pmap.actionable.consent_default)
        else:
            table = suppression.update_marketing_consent(
                connect(),
                read_partition(connect(), lake.partition_file("raw", "profiles", ds)),
                _read(lake, "quarantine_profiles", ds),
                previous,
                pmap.consent,
                _marketing_withheld(lake, column, ds),
            )
        consent = Counter(table.column("consent_marketing").to_pylist())
        return dg.MaterializeResult(
            metadata=write_snapshot(
                lake,
                "actionable",
                MARKETING_CONSENT,
                ds,
                table,
                start,
                consented=consent[True],
                refused=consent[False],
                unknown=consent[None],
            )
        )

    return [channel_suppressions, marketing_consent]
