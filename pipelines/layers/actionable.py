"""Actionable data: typed, validated, deduplicated rows (the rest quarantined with reasons), the
profile snapshot without PII, erased users, per-user daily aggregates and the feature table."""

from datetime import date

import dagster as dg
import pyarrow as pa

from assets import actionable, erasure, features
from assets.lake import Lake, connect, read_partition, read_partitions
from assets.pyramid_map import PyramidMap
from pipelines.layers import daily_activity, lookback_days, partition_day, previous_partition, write_table
from pipelines.layers.erasure import ERASURE_CHECK, erasure_check, erasure_sets
from pipelines.layers.quality import (
    INPUTS_CHECK,
    blocked_for_day,
    data_quality_docs_asset,
    inputs_check,
    suite_check_results,
    suite_metadata,
    suite_specs,
    validate_and_record,
)
from pipelines.resources import PyramidResource

ACCOUNTING_CHECK = "rows_accounted_for"


def accounting_check(asset_name: str, result: actionable.CleanResult) -> dg.AssetCheckResult:
    figures = result.accounting()
    return dg.AssetCheckResult(
        asset_key=asset_name,
        check_name=ACCOUNTING_CHECK,
        passed=bool(figures["balanced"]),
        metadata={k: v for k, v in figures.items() if k != "balanced"},
        description="raw rows = actionable rows + quarantined rows + duplicates removed",
    )


def _accounting_spec(asset_name: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        ACCOUNTING_CHECK, asset=asset_name, blocking=True,
        description="Nothing is lost silently: raw = actionable + quarantined + duplicates removed.",
    )


# --- the suites as asset checks ---------------------------------------------------------------------

def _clean_result_metadata(lake: Lake, name: str, ds: date, result: actionable.CleanResult) -> dict:
    write_table(lake, "actionable", f"quarantine_{name}", ds, result.quarantine)
    metadata = write_table(lake, "actionable", name, ds, result.table, **result.accounting())
    metadata.pop("balanced", None)
    for reason, count in _reason_counts(result.quarantine).items():
        metadata[f"quarantined/{reason}"] = count
    return metadata


def _read(con, lake: Lake, layer: str, name: str, ds: date) -> pa.Table:
    return read_partition(con, lake.partition_file(layer, name, ds))


def _written(lake: Lake, name: str, ds: date, table: pa.Table) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=write_table(lake, "actionable", name, ds, table))


def _reason_counts(quarantine: pa.Table) -> dict[str, int]:
    if quarantine.num_rows == 0:
        return {}
    rows = connect().sql(
        "SELECT reason, count(*) AS n FROM (SELECT unnest(reasons) AS reason FROM quarantine) GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {reason: n for reason, n in rows}


def build(partitions: dg.PartitionsDefinition, pyramid_map: PyramidMap) -> list[dg.AssetsDefinition]:
    start = pyramid_map.start_date

    @dg.asset(
        group_name="actionable", partitions_def=partitions, deps=["raw_profiles"], kinds={"duckdb", "parquet"},
        check_specs=[_accounting_spec("actionable_profiles"), *suite_specs("profiles", "actionable_profiles")],
        description="Profile snapshot as of the day: latest update wins, PII removed, consent known.",
    )
    def actionable_profiles(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, settings = pyramid.lake(), partition_day(context), pyramid.pyramid_map().actionable
        con = connect()
        raw = _read(con, lake, "raw", "profiles", ds)
        previous = previous_partition(lake, "actionable", "profiles", ds, start)
        outcome, docs = validate_and_record(lake, "profiles", ds, raw, settings)
        result = actionable.update_profiles(con, raw, previous, ds, settings, validation=outcome)
        metadata = _clean_result_metadata(lake, "profiles", ds, result)
        metadata.update(suite_metadata(result, docs))
        metadata["contradictory_updates"] = int(result.details.get("contradictions", 0))
        metadata["unknown_consent"] = int(result.details.get("unknown_consent", 0))
        metadata["snapshot_users"] = int(result.details.get("snapshot_users", 0))
        return dg.MaterializeResult(metadata=metadata, check_results=[
            accounting_check("actionable_profiles", result),
            *suite_check_results("actionable_profiles", outcome, docs)])

    @dg.asset(
        group_name="actionable", partitions_def=partitions, deps=["raw_erasure_requests"], kinds={"duckdb", "parquet"},
        description="Every user who asked to be erased, up to and including the day.",
    )
    def actionable_erased_users(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        con = connect()
        raw = _read(con, lake, "raw", "erasure_requests", ds)
        previous = previous_partition(lake, "actionable", "erased_users", ds, start)
        erased = actionable.update_erasures(con, raw, previous)
        return _written(lake, "erased_users", ds, erased)

    @dg.asset(
        group_name="actionable", partitions_def=partitions,
        deps=["actionable_erased_users", "actionable_events", "actionable_transactions", "actionable_profiles"],
        kinds={"duckdb", "parquet"},
        check_specs=[dg.AssetCheckSpec(ERASURE_CHECK, asset="erasure_applied", blocking=True,
                                       description="No Parquet file of the lake (raw events, transactions and "
                                                   "profiles included) mentions an erased user.")],
        description="Erasure requests applied: the day's partitions lose every erased user's rows, and a user "
                    "erased today is removed from every earlier partition of every layer (assets/erasure.py).",
    )
    def erasure_applied(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        erased, new = erasure_sets(lake, ds, start)
        removed_today = erasure.erase_users(lake, erased, only_day=ds)
        removed_history = erasure.erase_users(lake, new) if new else {}
        return dg.MaterializeResult(
            metadata={
                "erased_users": len(erased),
                "new_requests": len(new),
                "removed_today": dg.MetadataValue.json(removed_today),
                "removed_from_history": dg.MetadataValue.json(removed_history),
                "rows_removed": sum(removed_today.values()) + sum(removed_history.values()),
            },
            check_results=[erasure_check(lake, ds, erased, new)],
        )

    def _clean_asset(name: str, key_column: str, clean) -> dg.AssetsDefinition:
        asset_name = f"actionable_{name}"

        @dg.asset(
            name=asset_name, group_name="actionable", partitions_def=partitions,
            deps=[f"raw_{name}", "actionable_profiles"], kinds={"duckdb", "parquet"},
            check_specs=[_accounting_spec(asset_name), *suite_specs(name, asset_name)],
            description=f"Typed, validated {name}, deduplicated on {key_column} within the lookback; "
                        "refused rows go to quarantine with every reason.",
        )
        def _asset(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
            lake, ds, settings = pyramid.lake(), partition_day(context), pyramid.pyramid_map().actionable
            con = connect()
            raw = _read(con, lake, "raw", name, ds)
            known_users = _read(con, lake, "actionable", "profiles", ds).select(["user_id"])
            seen = read_partitions(con, lake, "actionable", name, lookback_days(ds, settings.dedup_lookback_days, start),
                                   columns=key_column)
            outcome, docs = validate_and_record(lake, name, ds, raw, settings)
            result = clean(con, raw, ds, known_users, seen, settings, validation=outcome)
            metadata = _clean_result_metadata(lake, name, ds, result)
            metadata.update(suite_metadata(result, docs))
            for kind in ("duplicates_of_lookback", "duplicates_within_partition", "conflicting_copies"):
                metadata[kind] = int(result.details.get(kind, 0))
            return dg.MaterializeResult(metadata=metadata, check_results=[
                accounting_check(asset_name, result), *suite_check_results(asset_name, outcome, docs)])

        return _asset

    @dg.asset(
        group_name="actionable", partitions_def=partitions,
        deps=["actionable_events", "actionable_transactions", "erasure_applied"], kinds={"duckdb", "parquet"},
        description="Per user and activity day, the activity that landed this day (late rows included).",
    )
    def user_daily(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        con = connect()
        events = _read(con, lake, "actionable", "events", ds)
        transactions = _read(con, lake, "actionable", "transactions", ds)
        daily = features.user_daily(con, events, transactions)
        return _written(lake, "user_daily", ds, daily)

    @dg.asset(
        group_name="actionable", partitions_def=partitions,
        deps=["user_daily", "actionable_profiles", "actionable_erased_users", "erasure_applied"],
        kinds={"duckdb", "parquet"},
        check_specs=[dg.AssetCheckSpec(INPUTS_CHECK, asset="user_features",
                                       description="No segment, campaign or goal needs a column withheld today; "
                                                   "fails naming the column, the expectation and every blocked item.")],
        description="One row per known, non-erased user as of the day: profile, recency and windowed activity.",
    )
    def user_features(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, pmap = pyramid.lake(), partition_day(context), pyramid.pyramid_map()
        con = connect()
        windows = list(pmap.segments.windows)
        daily = daily_activity(lake, ds, max(windows), start)
        profiles = _read(con, lake, "actionable", "profiles", ds)
        erased = _read(con, lake, "actionable", "erased_users", ds)
        table = features.user_features(con, daily, profiles, erased, ds, windows)
        return dg.MaterializeResult(metadata=write_table(lake, "actionable", "user_features", ds, table),
                                    check_results=[inputs_check(blocked_for_day(lake, pmap, ds))])

    return [
        actionable_profiles,
        actionable_erased_users,
        _clean_asset("events", "event_id", actionable.clean_events),
        _clean_asset("transactions", "txn_id", actionable.clean_transactions),
        erasure_applied,
        user_daily,
        user_features,
        data_quality_docs_asset(partitions),
    ]
