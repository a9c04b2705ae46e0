"""Goals and the North Star: treatment against holdout per goal and day, guardrails, and the one
series everything serves, with each goal's contribution to it."""

from collections.abc import Iterator
from datetime import date, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from assets import delta_store, goal_cohort, goal_day, goals, north_star, time_to_event
from assets.buckets import Bucket, bucket_count
from assets.features import touchpoint_daily_schema
from assets.lake import Lake, connect, partition_files, read_partition, readable, write_parquet_atomic
from assets.pyramid_map import PyramidMap
from assets.snapshots import read_day
from pipelines.layers import (
    MissingPartition,
    daily_activity,
    lake_table,
    partition_day,
    previous_partition,
    write_table,
)
from pipelines.layers.goal_buckets import (
    BucketTask,
    bucket_dir,
    bucket_rows,
    first_activity_day,
    metric_columns,
    previous_bucket_rows,
    read_parts,
    remove_folder,
    remove_scratch,
    snapshot_bucket_rows,
    window,
    write_parts,
)
from pipelines.layers.order import previous_day, trailing_days
from pipelines.layers.quality import COLUMN_STATUS_ASSETS, blocked_for_day
from pipelines.layers.ranges import days_of_run, each_day, merged_check
from pipelines.layers.segments import baseline_metrics
from pipelines.resources import PyramidResource

SRM_CHECK = "sample_ratio_ok"
GOAL_METRICS = "goal_metrics"
SRM_SPEC = dg.AssetCheckSpec(
    SRM_CHECK, asset=GOAL_METRICS, description="Arm sizes match each campaign's holdout share."
)
SRM_OUTPUT = SRM_SPEC.get_python_identifier()  # the goal step's output that carries the check's result
USER_OUTCOMES = "goal_user_outcomes"  # per-user cumulative outcomes, an asset of the goal_metrics step
COHORT = "goal_cohort"  # the intent-to-treat cohort with covariates and exposure, an asset of the goal_metrics step
# the cumulative tables stored as checkpoints and deltas (assets/delta_store.py), with how their rows move on
STORED = {USER_OUTCOMES: goal_cohort.OUTCOMES_STORAGE, COHORT: goal_cohort.COHORT_STORAGE}


def build(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    start = pyramid_map.start_date
    goal_metrics = goal_step(partitions, pyramid_map)

    north_star_window = pyramid_map.metrics[pyramid_map.north_star.metric].window_days
    users_from = [trailing_days("user_daily", north_star_window), "actionable_profiles", "actionable_erased_users"]

    @dg.multi_asset(
        name="north_star_series",
        partitions_def=partitions,
        can_subset=False,
        specs=[
            dg.AssetSpec(
                "north_star_series",
                group_name="goals",
                deps=["goal_metrics", *users_from],
                kinds={"polars", "parquet"},
                metadata=lake_table("goals", "north_star"),
                description=f"The North Star ({pyramid_map.north_star.id}: "
                f"{pyramid_map.north_star.description}), one value per day.",
            ),
            dg.AssetSpec(
                "north_star_contributions",
                group_name="goals",
                deps=[previous_day("campaign_audiences"), *users_from],
                kinds={"polars", "parquet"},
                metadata=lake_table("goals", "north_star_contributions"),
                description="One row per goal: its campaign's North Star metric per arm (each user "
                "attributed to one campaign) and its contribution to the North Star with a 95% interval.",
            ),
        ],
    )
    @each_day
    def north_star_series(
        context: dg.AssetExecutionContext, pyramid: PyramidResource
    ) -> Iterator[dg.MaterializeResult]:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        metric = pmap.metrics[pmap.north_star.metric]
        activity = daily_activity(lake, ds, metric.window_days, start)
        users = known_users(lake, ds)
        buckets = bucket_count()
        series = north_star.north_star(activity, users, metric, pmap.north_star.id, ds, buckets)
        series = north_star.with_window_coverage(series, metric.window_days, ds, start)
        contributions = north_star.north_star_contributions(
            audiences_before(lake, ds, start), activity, metric, pmap.goals, users.num_rows, ds, start, buckets
        )
        value = series.column("value")[0].as_py() if series.num_rows else None
        metadata = write_table(
            lake,
            "goals",
            "north_star",
            ds,
            series,
            value=float("nan") if value is None else value,
            window_complete=series.column("window_complete")[0].as_py(),
        )
        yield dg.MaterializeResult(asset_key="north_star_series", metadata=metadata)
        yield dg.MaterializeResult(
            asset_key="north_star_contributions",
            metadata=write_table(
                lake,
                "goals",
                "north_star_contributions",
                ds,
                contributions,
                window_complete=series.column("window_complete")[0].as_py(),
                **{f"total/{k}": v for k, v in (north_star.total_contribution(contributions) or {}).items()},
            ),
        )

    return [goal_metrics, north_star_series]


def goal_specs(pyramid_map: PyramidMap) -> list[dg.AssetSpec]:
    """The three tables of the goal step, with what each is computed from."""
    # the audiences and exports of the day before (what was sent for the day); user_daily over the days the
    # measured days' windows (the open days of the late lookback) and the CUPED pre-period reach back to
    activity_days = trailing_days("user_daily", goal_activity_days(pyramid_map))
    exports = [previous_day(f"touchpoint_{tp.id}") for tp in pyramid_map.touchpoints]
    measured_from = [previous_day("campaign_audiences"), activity_days, *COLUMN_STATUS_ASSETS]
    if touchpoint_metrics(pyramid_map):
        measured_from.append(trailing_days("user_touchpoint_daily", goal_activity_days(pyramid_map)))
    return [
        dg.AssetSpec(
            COHORT,
            group_name="goals",
            deps=[*measured_from, *exports, previous_day(COHORT), "user_features"],
            kinds={"polars", "parquet"},
            metadata=lake_table("goals", COHORT),
            description="Per goal and user who entered its campaign's audience: entry day and arm (intent to "
            "treat: nobody leaves), pre-entry covariate (CUPED), first exposure; for a time-to-event goal, anchor "
            "and first event.",
        ),
        dg.AssetSpec(
            USER_OUTCOMES,
            group_name="goals",
            deps=[COHORT, *measured_from, previous_day(USER_OUTCOMES)],
            kinds={"polars", "parquet"},
            metadata=lake_table("goals", USER_OUTCOMES),
            description="Per goal and cohort user, campaign to date: days measured and success days, up to "
            "the last settled day (each day builds on the day before).",
        ),
        dg.AssetSpec(
            GOAL_METRICS,
            group_name="goals",
            deps=[COHORT, USER_OUTCOMES, *measured_from],
            kinds={"polars", "parquet"},
            metadata=lake_table("goals", GOAL_METRICS),
            description="Per goal and day: treatment vs holdout, lift with its interval, sample ratio, "
            "status; guardrails. Campaign to date: intent to treat, users as clusters, CUPED, from "
            "goal_user_outcomes and the open days.",
        ),
    ]


def goal_step(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> dg.AssetsDefinition:
    """The goal step as a graph of steps (docs/scaling.md, "Buckets"): `goal_buckets` fans out one task per user
    bucket of the day, `goal_bucket` does a bucket's per-user work, `goal_collect` stacks the buckets and writes
    the three tables, so that an executor can run the buckets side by side."""
    specs = goal_specs(pyramid_map)
    inputs = graph_inputs(specs)
    fan_out, per_bucket, collect = goal_ops(pyramid_map, list(inputs))

    def compose(**upstream: object) -> dict:
        tasks, earlier_days = fan_out(**upstream)
        cohort, outcomes, metrics, check = collect(tasks.map(per_bucket).collect(), earlier_days)
        return {COHORT: cohort, USER_OUTCOMES: outcomes, GOAL_METRICS: metrics, SRM_OUTPUT: check}

    graph = dg.graph(
        name=GOAL_METRICS,
        ins={name: dg.GraphIn() for name in inputs},
        out={name: dg.GraphOut() for name in (COHORT, USER_OUTCOMES, GOAL_METRICS, SRM_OUTPUT)},
    )(compose)
    by_key = {spec.key: spec for spec in specs}
    step = dg.AssetsDefinition.from_graph(
        graph,
        keys_by_input_name={name: dep.asset_key for name, dep in inputs.items()},
        keys_by_output_name={spec.key.path[-1]: spec.key for spec in specs},
        partitions_def=partitions,
        partition_mappings={name: dep.partition_mapping for name, dep in inputs.items() if dep.partition_mapping},
        group_name="goals",
        can_subset=False,
        check_specs=[SRM_SPEC],
    )
    # each table's own deps (a graph's inputs are shared, and a table of the step is read on its own day)
    return step.map_asset_specs(
        lambda spec: spec.replace_attributes(
            deps=by_key[spec.key].deps,
            kinds=by_key[spec.key].kinds,
            metadata={**spec.metadata, **by_key[spec.key].metadata},
            description=by_key[spec.key].description,
        )
    )


def graph_inputs(specs: list[dg.AssetSpec]) -> dict[str, dg.AssetDep]:
    """One graph input per upstream table of the step; a table of the step itself only as of the day before."""
    own = {spec.key for spec in specs}
    deps = {}
    for dep in (d for spec in specs for d in spec.deps):
        if dep.asset_key not in own or dep.partition_mapping is not None:
            deps[dep.asset_key.to_python_identifier()] = dep
    return deps


def goal_ops(pyramid_map: PyramidMap, upstream: list[str]) -> tuple[dg.OpDefinition, ...]:
    """The goal step's ops: fan out over the buckets, one bucket, collect (`goal_step`)."""

    @dg.op(
        name="goal_buckets",
        ins={name: dg.In(dg.Nothing) for name in upstream},
        out={"tasks": dg.DynamicOut(), "earlier_days": dg.Out()},
    )
    def fan_out(context: dg.OpExecutionContext, pyramid: PyramidResource) -> Iterator[dg.DynamicOutput | dg.Output]:
        """One task per user bucket of the day (`$PYRAMID_BUCKETS`); removes what a failed run of the day left.
        A ranged run measures its days but the last here, one after the other (each builds on the day before),
        and passes on what they wrote; the last day's buckets fan out."""
        lake, pmap = pyramid.lake(), pyramid.pyramid_map()
        *earlier, last = days_of_run(context)
        written = [(day, measure_day(lake, pmap, day_tasks(lake, pmap, day))) for day in earlier]
        for task in day_tasks(lake, pmap, last):
            yield dg.DynamicOutput(task, output_name="tasks", mapping_key=str(task.bucket.index))
        yield dg.Output(written, output_name="earlier_days")

    @dg.op(name="goal_bucket")
    def per_bucket(pyramid: PyramidResource, task: BucketTask) -> BucketTask:
        """One bucket's per-user goal work on its users' rows, written to the day's scratch folder; a failed bucket
        removes the parts it wrote."""
        measure_bucket(pyramid.lake(), pyramid.pyramid_map(), task)
        return task

    outs = {name: dg.Out(dg.Nothing) for name in (COHORT, USER_OUTCOMES, GOAL_METRICS)}

    @dg.op(name="goal_collect", out={**outs, SRM_OUTPUT: dg.Out()})
    def collect(
        context: dg.AssetExecutionContext, pyramid: PyramidResource, tasks: list[BucketTask], earlier_days: list
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """The buckets' tables stacked and summed: goal_cohort, goal_user_outcomes, goal_metrics and the SRM check;
        in a ranged run each day's metadata (pipelines/layers/ranges.py)."""
        tasks = sorted(tasks, key=lambda t: t.bucket.index)
        days = [*earlier_days, (tasks[0].ds, collect_day(pyramid.lake(), pyramid.pyramid_map(), tasks))]
        for day, (day_metadata, _) in days:
            for name, values in day_metadata.items():
                context.add_asset_metadata(values, asset_key=name, partition_key=str(day))
        for name in (COHORT, USER_OUTCOMES, GOAL_METRICS):
            yield dg.Output(None, name)
        checks = [(day, srm_check(failing)) for day, (_, failing) in days]
        yield checks[0][1] if len(checks) == 1 else merged_check(checks, GOAL_METRICS, SRM_CHECK)

    return fan_out, per_bucket, collect


def day_tasks(lake: Lake, pmap: PyramidMap, ds: date) -> list[BucketTask]:
    """The day's bucket tasks (`$PYRAMID_BUCKETS` of them), after removing what a failed run of the day left."""
    remove_scratch(lake, ds)
    blocked = blocked_for_day(lake, pmap, ds).goals  # a goal needing a withheld column is not measured today
    measured = tuple(g.id for g in pmap.goals if g.id not in blocked)
    first_day = first_activity_day(lake, ds, goal_activity_days(pmap), pmap.start_date)
    count = bucket_count()  # the one place the goal step reads the count: how the day is run, not the map
    return [BucketTask(ds, Bucket(b, count), first_day, measured) for b in range(count)]


def measure_bucket(lake: Lake, pmap: PyramidMap, task: BucketTask) -> None:
    """One bucket's per-user goal work, written to the day's scratch folder; a failed bucket removes its parts."""
    measured = [g for g in pmap.goals if g.id in task.measured]
    inputs = bucket_inputs(lake, pmap, task)
    tables = goal_day.measure_bucket(
        inputs, measured, pmap.metrics, task.ds, pmap.start_date, pmap.late_lookback_days, task.first_day
    )
    try:
        write_parts(lake, task, tables)
    except BaseException:
        remove_folder(lake, bucket_dir(lake, task))
        raise


def measure_day(lake: Lake, pmap: PyramidMap, tasks: list[BucketTask]) -> tuple[dict, list[str]]:
    """A whole day of the goal step in this process: every bucket, then `collect_day`."""
    for task in tasks:
        measure_bucket(lake, pmap, task)
    return collect_day(lake, pmap, tasks)


def collect_day(lake: Lake, pmap: PyramidMap, tasks: list[BucketTask]) -> tuple[dict, list[str]]:
    """Stack the day's bucket parts and write its goal tables (`write_goal_tables`); the parts are removed."""
    try:
        return write_goal_tables(lake, pmap, tasks[0], goal_day.stack_buckets([read_parts(lake, t) for t in tasks]))
    finally:
        remove_scratch(lake, tasks[0].ds)


def bucket_inputs(lake: Lake, pmap: PyramidMap, task: BucketTask) -> goal_day.GoalDayInputs:
    """What a bucket's step reads: its users' rows of the goal run's inputs."""
    ds, bucket, start = task.ds, task.bucket, pmap.start_date
    first, days = window(ds, goal_activity_days(pmap), start)
    between = ("activity_date BETWEEN ? AND ?", (first, ds))
    files = partition_files(lake, "actionable", "user_daily", days)
    activity = bucket_rows(files, bucket, metric_columns(pmap.metrics.values()), *between)
    if activity is None:
        raise MissingPartition(f"actionable/user_daily has no partition between {first} and {ds}")
    touchpoints = None
    if touchpoint_metrics(pmap):
        files = partition_files(lake, "actionable", "user_touchpoint_daily", days)
        touchpoints = bucket_rows(files, bucket, "*", *between) or touchpoint_daily_schema().empty_table()
    return goal_day.GoalDayInputs(
        audiences_prev=previous_bucket_rows(lake, "campaigns", "audiences", ds, start, bucket),
        exports_prev=exports_before(lake, pmap, ds, bucket),
        activity=activity,
        touchpoints=touchpoints,
        previous_cohort=previous_stored(lake, COHORT, ds, start, bucket),
        previous_outcomes=previous_stored(lake, USER_OUTCOMES, ds, start, bucket),
        signups=signups(lake, pmap, ds, bucket),
    )


def write_goal_tables(
    lake: Lake, pmap: PyramidMap, task: BucketTask, tables: goal_day.GoalDayTables
) -> tuple[dict[str, dict], list[str]]:
    """Write the day's goal_cohort, goal_user_outcomes and goal_metrics from the stacked buckets' tables; return
    each table's materialization metadata and the goals whose arms' sizes fail the sample ratio test."""
    ds, start, buckets = task.ds, pmap.start_date, task.bucket.count
    measured = [g for g in pmap.goals if g.id in task.measured]
    day_rows = goals.goal_day_rows(tables.day_outcomes, measured, pmap.campaigns, ds, pmap.metrics, buckets)
    metadata = {COHORT: write_table(lake, "goals", COHORT, ds, tables.cohort)}
    compact_stored(lake, COHORT, ds - timedelta(days=1), start)
    metadata[USER_OUTCOMES] = write_table(lake, "goals", USER_OUTCOMES, ds, tables.settled)
    compact_stored(lake, USER_OUTCOMES, ds - timedelta(days=1), start)
    to_date = goal_cohort.goal_to_date(
        tables.read_on_ds, ds, pmap.goals, pmap.campaigns, tables.cohort, pmap.metrics, buckets
    )
    table = pa.concat_tables([day_rows, to_date])
    failing = [r["goal_id"] for r in day_rows.to_pylist() if r["srm_ok"] is False and r["kind"] == "goal"]
    status = {f"status/{r['goal_id']}": r["status"] for r in to_date.to_pylist() if r["kind"] == "goal"}
    metadata[GOAL_METRICS] = write_table(lake, "goals", GOAL_METRICS, ds, table, **status)
    return metadata, failing


def srm_check(failing: list[str]) -> dg.AssetCheckResult:
    """The day's sample ratio check: warns when a goal's arms are not in its campaign's holdout proportion."""
    return dg.AssetCheckResult(
        asset_key=GOAL_METRICS,
        check_name=SRM_CHECK,
        passed=not failing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"goals_with_sample_ratio_mismatch": ", ".join(failing) or "none"},
    )


def longest_metric_window(pyramid_map: PyramidMap) -> int:
    return max((m.window_days for m in baseline_metrics(pyramid_map)), default=1)


def goal_activity_days(pyramid_map: PyramidMap) -> int:
    """Activity days a goal run reads: the metric windows of the days still open to late data (lookback + 1) or
    of the CUPED pre-period (K days before entry), whichever reaches further back."""
    return longest_metric_window(pyramid_map) + max(pyramid_map.late_lookback_days, goal_cohort.CUPED_PRE_DAYS)


def signups(lake: Lake, pyramid_map: PyramidMap, ds: date, bucket: Bucket) -> pa.Table | None:
    """The bucket's user_id, signup_ds (the features' as_of - tenure_days) as of ds when a time-to-event metric is
    anchored on signup, else None."""
    if not any(m.kind == time_to_event.KIND and m.anchor == "signup" for m in pyramid_map.metrics.values()):
        return None
    columns = "user_id, CAST(as_of - CAST(tenure_days AS INTEGER) AS DATE) AS signup_ds"
    return snapshot_bucket_rows(lake, "actionable", "user_features", ds, bucket, columns)


def touchpoint_metrics(pyramid_map: PyramidMap) -> list[str]:
    """The goals' metrics (and guardrails) counted at one touchpoint, which read user_touchpoint_daily."""
    return [m.id for m in baseline_metrics(pyramid_map) if m.touchpoint]


def exports_before(lake: Lake, pyramid_map: PyramidMap, ds: date, bucket: Bucket) -> pa.Table | None:
    """Every touchpoint's exports to the bucket's users as of the day before (who was sent something for the day);
    None on the first day or when nothing was exported."""
    previous = ds - timedelta(days=1)
    if previous < pyramid_map.start_date:
        return None
    tables = [
        bucket_rows(partition_files(lake, "touchpoints", tp.id, [previous]), bucket, "campaign_id, user_id")
        for tp in pyramid_map.touchpoints
    ]
    tables = [t for t in tables if t is not None]
    return pa.concat_tables(tables) if tables else None


def audiences_before(lake: Lake, ds: date, start: date) -> pa.Table | None:
    """The audiences as of the day before: what the touchpoints were sent for this day."""
    return previous_partition(lake, "campaigns", "audiences", ds, start)


def previous_stored(lake: Lake, table: str, ds: date, start: date, bucket: Bucket | None = None) -> pa.Table | None:
    """The full goals/`table` (one of STORED) as of ds - 1, which the day's table builds on, or its `bucket`'s rows;
    None on the first day. Raises MissingPartition when that partition has not been materialized."""
    path = lake.partition_file("goals", table, ds - timedelta(days=1))
    if ds > start and path.exists() and delta_store.is_delta(pq.read_schema(readable(path))):
        full = stored_day(lake, table, ds - timedelta(days=1))  # a re-run of an older day: rebuilt whole
        return full if bucket is None else bucket.rows_of(full)
    if bucket is None:
        return previous_partition(lake, "goals", table, ds, start)
    return previous_bucket_rows(lake, "goals", table, ds, start, bucket)


def stored_day(lake: Lake, table: str, ds: date) -> pa.Table:
    """The full goals/`table` (one of STORED) of `ds`, rebuilt from the last full partition when it is stored as a
    delta (assets/delta_store.py)."""
    path = lake.partition_file("goals", table, ds)
    if not delta_store.is_delta(pq.read_schema(readable(path))):
        return read_partition(connect(), path)
    before = stored_day(lake, table, ds - timedelta(days=1))
    return delta_store.apply_delta(before, pq.read_table(readable(path)), ds, STORED[table])


def compact_stored(lake: Lake, table: str, day: date, start: date) -> None:
    """Store the partition of `day` of goals/`table` (one of STORED) as a delta on the day before, once a later day
    is written: unless it is a checkpoint, already a delta, or the delta would not rebuild it exactly."""
    path = lake.partition_file("goals", table, day)
    previous = day - timedelta(days=1)
    if day <= start or delta_store.is_checkpoint(day, start) or not path.exists():
        return
    stored_as_delta = delta_store.is_delta(pq.read_schema(readable(path)))
    if stored_as_delta or not lake.has_partition("goals", table, previous):
        return
    full = read_partition(connect(), path)
    delta = delta_store.table_delta(stored_day(lake, table, previous), full, STORED[table])
    if delta is not None:
        write_parquet_atomic(delta, path)


def known_users(lake: Lake, ds: date) -> pa.Table:
    """Known, non-erased users as of the day (consented or not: the North Star holds no personal data)."""
    con = connect()
    con.register("profiles", read_day(lake, "actionable", "profiles", ds, ["user_id"]))
    con.register("erased", read_partition(con, lake.partition_file("actionable", "erased_users", ds)))
    return con.sql(
        "SELECT user_id FROM profiles WHERE user_id NOT IN (SELECT user_id FROM erased) ORDER BY user_id"
    ).to_arrow_table()
