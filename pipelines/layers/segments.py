"""User segments: membership per as-of day from the map's rules and scores, their summary, overlap and
baselines on the goal metrics."""

from datetime import date, timedelta

import dagster as dg
import pyarrow as pa

from assets import segment_baselines as baselines
from assets import segments
from assets.crash_points import crash_point
from assets.features import history_days, monotone_windowed
from assets.lake import Lake, connect, read_partition
from assets.pyramid_map import Metric, PyramidMap
from assets.snapshots import read_day
from pipelines.layers import (
    daily_activity,
    lake_table,
    partition_day,
    previous_partition,
    touchpoint_daily_activity,
    write_table,
)
from pipelines.layers.order import previous_day, trailing_days
from pipelines.layers.quality import COLUMN_STATUS_ASSETS, blocked_for_day
from pipelines.layers.ranges import each_day
from pipelines.resources import PyramidResource

CHURN_CHECK = "segment_churn"
MEASURED_KINDS = ("share", "ratio", "mean")  # the metric kinds measured on a window of daily activity


def baseline_metrics(pyramid_map: PyramidMap) -> list[Metric]:
    """The metrics the goals use (each goal's metric, then its guardrails), once each, in map order: those measured
    on a window of daily activity (MEASURED_KINDS)."""
    ids = [m for g in pyramid_map.goals for m in (g.metric, *g.guardrails)]
    return [pyramid_map.metrics[m] for m in dict.fromkeys(ids) if pyramid_map.metrics[m].kind in MEASURED_KINDS]


def build(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    start = pyramid_map.start_date

    @dg.asset(
        group_name="segments",
        partitions_def=partitions,
        deps=["user_features", previous_day("segment_membership"), *COLUMN_STATUS_ASSETS],
        kinds={"duckdb", "parquet"},
        metadata=lake_table("segments", "segment_membership"),
        description="Which eligible (consented, non-erased) users are in which segment as of the day "
        "(rule segments, RFM groups, lifecycle stages), with the start of each member's run.",
    )
    @each_day
    def segment_membership(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        features = read_day(lake, "actionable", "user_features", ds, _segment_columns(pmap))
        previous = previous_partition(lake, "segments", "segment_membership", ds, start)
        blocked = blocked_for_day(lake, pmap, ds).segments  # need a withheld column: not computed
        definitions = [d for d in pmap.segments.definitions if d.id not in blocked]
        membership = segments.segment_membership(features, definitions, ds, previous, monotone=monotone_windowed(pmap))
        metadata = write_table(lake, "segments", "segment_membership", ds, membership)
        crash_point("segments")
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(
        group_name="segments",
        partitions_def=partitions,
        deps=[trailing_days("segment_membership", 2), trailing_days("user_features", 2)],
        kinds={"duckdb", "parquet"},
        metadata=lake_table("segments", "segment_summary"),
        check_specs=[
            dg.AssetCheckSpec(
                "segments_usable",
                asset="segment_summary",
                description="Every segment has at least its min_size members.",
            ),
            dg.AssetCheckSpec(
                CHURN_CHECK,
                asset="segment_summary",
                description="No segment usable the day before has entered + exited above the map's "
                "segments.max_churn_share of its previous size (before and after hysteresis in the metadata).",
            ),
        ],
        description="Per segment: size, share of eligible users, usable or not, stability against the day before.",
    )
    @each_day
    def segment_summary(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        con = connect()
        membership = read_partition(con, lake.partition_file("segments", "segment_membership", ds))
        previous = previous_partition(lake, "segments", "segment_membership", ds, start)
        features = read_day(lake, "actionable", "user_features", ds, _segment_columns(pmap))
        con.register("features", features)
        eligible = int(con.sql("SELECT count(*) FROM features WHERE consent_personalization").fetchall()[0][0])
        days = history_days(ds, start)
        raw = (
            _raw_scored(lake, pmap, ds, features),
            None if previous is None else _raw_scored(lake, pmap, ds - timedelta(days=1)),
        )
        summary = segments.segment_summary(
            membership, previous, eligible, pmap.segments.definitions, ds, history_days=days, raw=raw
        )
        unusable = [row["segment_id"] for row in summary.to_pylist() if not row["usable"]]
        check = dg.AssetCheckResult(
            check_name="segments_usable",
            passed=not unusable,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"unusable_segments": ", ".join(unusable) or "none"},
        )
        churning = segments.churning_segments(summary, pmap.segments.max_churn_share)
        churning_raw = segments.churning_segments(summary, pmap.segments.max_churn_share, "raw_churn_share")
        churn_check = dg.AssetCheckResult(
            check_name=CHURN_CHECK,
            passed=not churning,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "churning_segments": ", ".join(churning) or "none",
                "churning_segments_raw": ", ".join(churning_raw) or "none",
                "max_churn_share": pmap.segments.max_churn_share,
                **segments.churn_metadata(summary),
            },
        )
        incomplete = [row["segment_id"] for row in summary.to_pylist() if not row["window_complete"]]
        metadata = write_table(
            lake,
            "segments",
            "segment_summary",
            ds,
            summary,
            eligible_users=eligible,
            history_days=days,
            incomplete_windows=", ".join(incomplete) or "none",
        )
        return dg.MaterializeResult(metadata=metadata, check_results=[check, churn_check])

    @dg.asset(
        group_name="segments",
        partitions_def=partitions,
        deps=["segment_membership"],
        kinds={"duckdb", "parquet"},
        metadata=lake_table("segments", "segment_overlap"),
        description="Pairs of segments: users in both and their Jaccard similarity.",
    )
    @each_day
    def segment_overlap(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        membership = read_partition(connect(), lake.partition_file("segments", "segment_membership", ds))
        overlap = segments.segment_overlap(membership, ds)
        return dg.MaterializeResult(metadata=write_table(lake, "segments", "segment_overlap", ds, overlap))

    @dg.asset(
        group_name="segments",
        partitions_def=partitions,
        deps=[
            "segment_membership",
            "user_features",
            trailing_days("user_daily", longest_baseline_window(pyramid_map)),
            trailing_days("user_touchpoint_daily", longest_baseline_window(pyramid_map)),
        ],
        kinds={"duckdb", "parquet"},
        metadata=lake_table("segments", "segment_baselines"),
        description="Test segments early: each segment's rate on each goal metric against all eligible users.",
    )
    @each_day
    def segment_baselines(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        con = connect()
        membership = read_partition(con, lake.partition_file("segments", "segment_membership", ds))
        features = read_day(lake, "actionable", "user_features", ds, segments.ELIGIBILITY_COLUMNS)
        metrics = baseline_metrics(pmap)
        activity = daily_activity(lake, ds, longest_baseline_window(pmap), start)
        touchpoints = touchpoint_daily_activity(lake, ds, longest_baseline_window(pmap), start)
        table = baselines.segment_baselines(
            membership, features, activity, metrics, pmap.segments.definitions, ds, touchpoints
        )
        return dg.MaterializeResult(metadata=write_table(lake, "segments", "segment_baselines", ds, table))

    return [segment_membership, segment_summary, segment_overlap, segment_baselines]


def _raw_scored(lake: Lake, pmap: PyramidMap, day: date, features: pa.Table | None = None) -> pa.Table:
    """The day's scored segments before hysteresis, from that day's features and unblocked definitions."""
    if features is None:
        features = read_day(lake, "actionable", "user_features", day, _segment_columns(pmap))
    blocked = blocked_for_day(lake, pmap, day).segments
    definitions = [d for d in pmap.segments.definitions if d.id not in blocked]
    return segments.raw_scored_membership(features, definitions, day)


def _segment_columns(pmap: PyramidMap) -> set[str]:
    """The user_features columns the segments read: every definition's, blocked or not (a blocked one is left out
    after the read)."""
    return segments.feature_columns(pmap.segments.definitions)


def longest_baseline_window(pyramid_map: PyramidMap) -> int:
    """The most days of user_daily a baseline reads."""
    return max((m.window_days for m in baseline_metrics(pyramid_map)), default=1)
