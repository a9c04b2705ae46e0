"""Actionable data: typed, validated, deduplicated rows (the rest quarantined with reasons), the
profile snapshot without PII, erased users, per-user daily aggregates and the feature table."""

import ctypes
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from assets import accounting, actionable, features, first_seen, landing, measures, privacy_decisions, profiles
from assets.actionable import CleanResult
from assets.judging import keys_of_files
from assets.lake import Lake, connect, partition_files, read_partition, readable
from assets.lineage import daily_column_lineage, feature_column_lineage
from assets.pyramid_map import ACTIVITY_SOURCES, NOT_DECLARED_NOTE, Actionable, PyramidMap, Source
from assets.quality.outcome import ValidationOutcome
from assets.snapshots import SNAPSHOTS, read_day, shift_moves, stored_as_delta
from pipelines.layers import (
    daily_activity,
    erasure_requests,
    lake_table,
    lookback_days,
    partition_day,
    previous_partition,
    reason_counts,
    suppression,
    write_snapshot,
    write_table,
)
from pipelines.layers.erasure import ERASURE_CHECK, apply_erasure
from pipelines.layers.order import earlier_days, previous_day, trailing_days
from pipelines.layers.quality import (
    COLUMN_STATUS_ASSETS,
    INPUTS_CHECK,
    SUITE_SOURCES,
    blocked_for_day,
    column_status_result,
    column_status_spec,
    data_quality_docs_asset,
    inputs_check,
    rows_check,
    suite_metadata,
    suite_specs,
    validate_and_record,
)
from pipelines.layers.ranges import each_day
from pipelines.metadata import column_lineage_metadata, table_metadata
from pipelines.resources import PyramidResource

ACCOUNTING_CHECK = "rows_accounted_for"


def accounting_check(
    lake: Lake, name: str, source: Source | None, ds: date, result: actionable.CleanResult
) -> dg.AssetCheckResult:
    """Records counted in the day's landing files by a separate read (assets/accounting.py) against the raw
    partition and the written outputs: actionable + quarantined rows + duplicates removed. A source the map
    leaves out (None) has no landing file."""
    landed = accounting.landed_records(landing.landing_files(lake, source, ds), source) if source is not None else {}
    accepted = (
        result.actionable_rows
        if result.actionable_rows is not None  # a snapshot: its accepted rows
        else accounting.parquet_rows(lake.partition_file("actionable", name, ds))
    )
    figures = accounting.accounting_figures(
        landed,
        raw_rows=accounting.parquet_rows(lake.partition_file("raw", name, ds)),
        actionable_rows=accepted,
        quarantined_rows=accounting.parquet_rows(lake.partition_file("actionable", f"quarantine_{name}", ds)),
        duplicates_removed=result.duplicates_removed,
    )
    return dg.AssetCheckResult(
        asset_key=f"actionable_{name}",
        check_name=ACCOUNTING_CHECK,
        passed=bool(figures["balanced"]),
        metadata={k: v for k, v in figures.items() if k != "balanced"},
        description=accounting.accounting_message(name, figures),
    )


def _accounting_spec(asset_name: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        ACCOUNTING_CHECK,
        asset=asset_name,
        blocking=True,
        description="Nothing is lost silently: the records of the landing files, counted by a separate read, "
        "= raw rows = actionable + quarantined + duplicates removed.",
    )


# --- a cleaned source: its actionable rows, its quarantine and its column status --------------------


def _cleaned_specs(name: str, deps: list[str], description: str, earlier: list[dg.AssetDep]) -> list[dg.AssetSpec]:
    """The three tables one cleaning of a source writes, each its own asset; `earlier`: the earlier days
    of its own table the cleaning reads."""
    return [
        dg.AssetSpec(
            f"actionable_{name}",
            group_name="actionable",
            deps=[*deps, *earlier],
            kinds={"duckdb", "parquet"},
            description=description,
            metadata=lake_table("actionable", name),
        ),
        dg.AssetSpec(
            f"quarantine_{name}",
            group_name="actionable",
            deps=deps,
            kinds={"duckdb", "parquet"},
            metadata=lake_table("actionable", f"quarantine_{name}"),
            description=f"The day's refused {name} rows: the raw row as it came, with every reason.",
        ),
        column_status_spec(name),
    ]


def _cleaned_check_specs(name: str) -> list[dg.AssetCheckSpec]:
    return [_accounting_spec(f"actionable_{name}"), *suite_specs(name)]


def _cleaned_results(
    lake: Lake,
    name: str,
    source: Source | None,
    ds: date,
    result: actionable.CleanResult,
    docs: str,
    start: date | None = None,
    **extra,
) -> Iterator[dg.MaterializeResult]:
    """Write the cleaned rows, the quarantine and the column status; one result per table. Both tables are
    written before the accounting check, which reads them back. A snapshot (profiles) is stored from `start`."""
    if source is None:
        extra["source"] = NOT_DECLARED_NOTE
    if result.written is not None:  # streamed to its file by the cleaning
        metadata = table_metadata(_FileColumns(result.written), result.written, **result.accounting())
    elif ("actionable", name) in SNAPSHOTS:
        metadata = write_snapshot(lake, "actionable", name, ds, result.table, start, **result.accounting())
    else:
        metadata = write_table(lake, "actionable", name, ds, result.table, **result.accounting())
    metadata.pop("balanced", None)
    metadata.update(suite_metadata(result, docs))
    metadata.update(extra)
    reasons = {f"quarantined/{reason}": n for reason, n in reason_counts(result.quarantine).items()}
    quarantine = write_table(lake, "actionable", f"quarantine_{name}", ds, result.quarantine, **reasons)
    yield dg.MaterializeResult(
        asset_key=f"actionable_{name}",
        metadata=metadata,
        check_results=[accounting_check(lake, name, source, ds, result), rows_check(name, result.validation, docs)],
    )
    yield dg.MaterializeResult(asset_key=f"quarantine_{name}", metadata=quarantine)
    yield column_status_result(lake, name, ds, result.validation, docs)


def _read(con: duckdb.DuckDBPyConnection, lake: Lake, layer: str, name: str, ds: date) -> pa.Table:
    return read_partition(con, lake.partition_file(layer, name, ds))


def _written(lake: Lake, name: str, ds: date, table: pa.Table) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=write_table(lake, "actionable", name, ds, table))


def _cleaned(
    lake: Lake,
    name: str,
    key_column: str,
    ds: date,
    settings: Actionable,
    clean: Callable[..., CleanResult],
    start: date,
) -> tuple[CleanResult, str]:
    """Validate and clean the day's raw rows of a keyed source, the accepted rows written to their partition.
    DuckDB reads the raw partition, the known users and the lookback's keys from their files (within its
    memory limit), GX gets one column group at a time, and the accepted rows are written a row group at a time:
    Python never holds the day's rows (issue 11: a 1M-user day within 3 GiB)."""
    con = connect()
    raw = lake.partition_file("raw", name, ds)
    profiles = lake.partition_file("actionable", "profiles", ds)
    if stored_as_delta(profiles):  # an older day re-run: its profiles are rebuilt (assets/snapshots.py)
        known_users = read_day(lake, "actionable", "profiles", ds).select(["user_id"])
    else:
        known_users = con.sql("SELECT user_id FROM read_parquet(?)", params=[str(profiles)])
    lookback = lookback_days(ds, settings.dedup_lookback_days, start)
    seen = keys_of_files(con, partition_files(lake, "actionable", name, lookback), key_column)
    outcome, docs = validate_and_record(lake, name, ds, raw, settings)
    release_freed_memory()  # GX's frames, before DuckDB's work
    accepted_to = lake.partition_file("actionable", name, ds)
    return clean(con, raw, ds, known_users, seen, settings, validation=outcome, accepted_to=accepted_to), docs


def release_freed_memory() -> None:
    """Hand the memory Python has freed back to the system (glibc keeps freed pages of large frames otherwise, and
    the step's peak RSS would count them twice); nothing elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class _FileColumns:
    """A written Parquet file read as `table_metadata` reads a table (schema, rows, a column, the first rows),
    one column in memory at a time: the metadata of a partition too large to hold whole."""

    def __init__(self, path: Path) -> None:
        self._file = pq.ParquetFile(readable(path))
        self.schema = self._file.schema_arrow
        self.column_names = self.schema.names
        self.num_columns = len(self.column_names)
        self.num_rows = self._file.metadata.num_rows

    def column(self, name: str) -> pa.ChunkedArray:
        return self._file.read(columns=[name]).column(0)

    def slice(self, offset: int = 0, length: int | None = None) -> pa.Table:
        first = next(self._file.iter_batches(batch_size=offset + (length or self.num_rows) or 1), None)
        return pa.Table.from_batches([first] if first is not None else [], self.schema).slice(offset, length)


def first_seen_result(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    ds: date,
    raw_profiles: pa.Table,
    previous: pa.Table | None,
    pmap: PyramidMap,
    outcome: ValidationOutcome,
) -> tuple[CleanResult, dict]:
    """The profile snapshot of a map without profiles (assets/first_seen.py), and its privacy decision as
    metadata, also recorded in the reports (assets/privacy_decisions.py)."""
    events, transactions = (_read(con, lake, "raw", name, ds) for name in ACTIVITY_SOURCES)
    snapshot, new = first_seen.first_seen_snapshot(con, events, transactions, previous, ds, pmap.actionable)
    consent = pmap.actionable.consent_default
    decision = first_seen.consent_decision(consent, snapshot.num_rows, new)
    privacy_decisions.record_decision(lake, ds, decision)
    result = CleanResult(
        table=snapshot,
        quarantine=actionable.empty_table("quarantine"),
        raw_rows=raw_profiles.num_rows,
        duplicates_removed=0,
        details={"snapshot_users": snapshot.num_rows},
        actionable_rows=0,
        validation=outcome,
    )
    return result.assert_balanced("profiles"), {"first_seen_users": new, **decision}


def build(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    start = pyramid_map.start_date

    @dg.multi_asset(
        name="actionable_profiles",
        partitions_def=partitions,
        can_subset=False,
        specs=_cleaned_specs(
            "profiles",
            ["raw_profiles", "raw_events", "raw_transactions"],  # without profiles, users are first seen there
            "Profile snapshot as of the day: latest update wins, PII removed, consent known (without profiles in "
            "the map: users first seen in events or transactions, consent from the map's default).",
            [previous_day("actionable_profiles")],
        ),
        check_specs=_cleaned_check_specs("profiles"),
    )
    @each_day
    def actionable_profiles(
        context: dg.AssetExecutionContext, pyramid: PyramidResource
    ) -> Iterator[dg.MaterializeResult]:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        con = connect()
        raw = _read(con, lake, "raw", "profiles", ds)
        previous = previous_partition(lake, "actionable", "profiles", ds, start)
        outcome, docs = validate_and_record(lake, "profiles", ds, raw, pmap.actionable)
        if "profiles" not in pmap.sources:
            result, extra = first_seen_result(con, lake, ds, raw, previous, pmap, outcome)
        else:
            result = profiles.update_profiles(con, raw, previous, ds, pmap.actionable, validation=outcome)
            extra = {
                "contradictory_updates": int(result.details.get("contradictions", 0)),
                "unknown_consent": int(result.details.get("unknown_consent", 0)),
            }
        extra["snapshot_users"] = int(result.details.get("snapshot_users", 0))
        yield from _cleaned_results(lake, "profiles", pmap.sources.get("profiles"), ds, result, docs, start, **extra)

    @dg.asset(
        group_name="actionable",
        partitions_def=partitions,
        deps=[
            trailing_days("actionable_erased_users", 2),
            *(f"{kind}_{source}" for kind in ("actionable", "quarantine") for source in SUITE_SOURCES),
        ],
        kinds={"duckdb", "parquet"},
        check_specs=[
            dg.AssetCheckSpec(
                ERASURE_CHECK,
                asset="erasure_applied",
                blocking=True,
                description="No Parquet file of the lake (raw events, transactions and "
                "profiles included) mentions an erased user.",
            )
        ],
        description="Erasure requests applied: the day's partitions lose every erased user's rows, and a user "
        "erased today is removed from every earlier partition of every layer (assets/erasure.py).",
    )
    @each_day
    def erasure_applied(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        return apply_erasure(pyramid.lake(), partition_day(context), start)

    def _clean_asset(name: str, key_column: str, clean: Callable[..., CleanResult]) -> dg.AssetsDefinition:
        @dg.multi_asset(
            name=f"actionable_{name}",
            partitions_def=partitions,
            can_subset=False,
            specs=_cleaned_specs(
                name,
                [f"raw_{name}", "actionable_profiles"],
                f"Typed, validated {name}, deduplicated on {key_column} within the lookback; "
                "refused rows go to quarantine with every reason.",
                earlier_days(f"actionable_{name}", pyramid_map.actionable.dedup_lookback_days),
            ),
            check_specs=_cleaned_check_specs(name),
        )
        @each_day
        def _asset(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> Iterator[dg.MaterializeResult]:
            lake, ds, settings = pyramid.lake(), partition_day(context), pyramid.pyramid_map().actionable
            result, docs = _cleaned(lake, name, key_column, ds, settings, clean, start)
            kinds = ("duplicates_of_lookback", "duplicates_within_partition", "conflicting_copies")
            yield from _cleaned_results(
                lake,
                name,
                pyramid.pyramid_map().sources.get(name),
                ds,
                result,
                docs,
                **{kind: int(result.details.get(kind, 0)) for kind in kinds},
            )

        return _asset

    @dg.asset(
        group_name="actionable",
        partitions_def=partitions,
        deps=["actionable_events", "actionable_transactions", "erasure_applied"],
        kinds={"duckdb", "parquet"},
        metadata=lake_table("actionable", "user_daily"),
        description="Per user and activity day, the activity that landed this day (late rows included).",
    )
    @each_day
    def user_daily(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        con = connect()
        events = _read(con, lake, "actionable", "events", ds)
        transactions = _read(con, lake, "actionable", "transactions", ds)
        pmap = pyramid.pyramid_map()
        daily = measures.user_daily(con, pmap, events, transactions)
        lineage = column_lineage_metadata(daily_column_lineage(pmap))
        return dg.MaterializeResult(metadata=write_table(lake, "actionable", "user_daily", ds, daily) | lineage)

    @dg.asset(
        group_name="actionable",
        partitions_def=partitions,
        deps=["actionable_events", "erasure_applied"],
        kinds={"duckdb", "parquet"},
        metadata=lake_table("actionable", "user_touchpoint_daily"),
        description="Per user, activity day and touchpoint, the counts of touchpoint events (impressions, clicks, "
        "conversions, unsubscribes) that landed this day; ratio and mean metrics at a touchpoint read it.",
    )
    @each_day
    def user_touchpoint_daily(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        con = connect()
        daily = features.user_touchpoint_daily(con, _read(con, lake, "actionable", "events", ds))
        return _written(lake, "user_touchpoint_daily", ds, daily)

    @dg.asset(
        group_name="actionable",
        partitions_def=partitions,
        deps=[
            trailing_days("user_daily", max(pyramid_map.segments.windows)),
            "actionable_profiles",
            "actionable_erased_users",
            "erasure_applied",
            *COLUMN_STATUS_ASSETS,
        ],
        kinds={"duckdb", "parquet"},
        metadata=lake_table("actionable", "user_features"),
        check_specs=[
            dg.AssetCheckSpec(
                INPUTS_CHECK,
                asset="user_features",
                description="No segment, campaign or goal needs a column withheld today; "
                "fails naming the column, the expectation and every blocked item.",
            )
        ],
        description="One row per known, non-erased user as of the day: profile, recency and windowed activity.",
    )
    @each_day
    def user_features(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        con = connect()
        windows = list(pmap.segments.windows)
        daily = daily_activity(lake, ds, max(windows), start)
        profiles = read_day(lake, "actionable", "profiles", ds)
        erased = _read(con, lake, "actionable", "erased_users", ds)
        table = features.user_features(con, pmap, daily, profiles, erased, ds, windows, history_start=start)
        moves = shift_moves(*features.day_counters(pmap, windows))  # what a day moves, not stored in a delta
        return dg.MaterializeResult(
            metadata=write_snapshot(lake, "actionable", "user_features", ds, table, start, moves)
            | column_lineage_metadata(feature_column_lineage(pmap)),
            check_results=[inputs_check(blocked_for_day(lake, pmap, ds))],
        )

    return [
        actionable_profiles,
        erasure_requests.build(partitions, start),
        _clean_asset("events", "event_id", actionable.clean_events),
        _clean_asset("transactions", "txn_id", actionable.clean_transactions),
        erasure_applied,
        user_daily,
        user_touchpoint_daily,
        user_features,
        data_quality_docs_asset(partitions),
        *suppression.build(partitions, pyramid_map),
    ]
