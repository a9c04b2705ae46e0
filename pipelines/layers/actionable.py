"""Actionable data: typed, validated, deduplicated rows (the rest quarantined with reasons), the
profile snapshot without PII, erased users, per-user daily aggregates and the feature table."""

from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa

from assets import actionable, erasure, features, quality
from assets.lake import Lake, connect, read_partition, read_partitions
from assets.pyramid_map import PyramidMap
from pipelines.layers import partition_day, write_table
from pipelines.resources import PyramidResource

ACCOUNTING_CHECK = "rows_accounted_for"
INPUTS_CHECK = "inputs_promoted"
ERASURE_CHECK = "erased_users_absent"
SUITE_SOURCES = ("events", "transactions", "profiles")


class MissingPartition(RuntimeError):
    """A partition needs an earlier one that has not been materialized."""


def previous_partition(lake: Lake, layer: str, table: str, ds: date, start: date) -> pa.Table | None:
    """The table's partition for the day before `ds`; None on the first day of the program."""
    if ds <= start:
        return None
    previous = ds - timedelta(days=1)
    path = lake.partition_file(layer, table, previous)
    if not path.exists():
        raise MissingPartition(
            f"{layer}/{table} for {ds} builds on the partition of {previous}, which is missing "
            f"({path}); materialize the days in order, e.g. `pyramid run --start {previous}`"
        )
    return read_partition(connect(), path)


def lookback_days(ds: date, days: int, start: date) -> list[date]:
    return [ds - timedelta(days=n) for n in range(1, days + 1) if ds - timedelta(days=n) >= start]


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

ROWS_CHECK = "suite_rows_valid"
COLUMNS_CHECK = "suite_columns_promoted"


def _suite_specs(source: str, asset_name: str) -> list[dg.AssetCheckSpec]:
    """Each suite's result as two checks (the suite is read without GX): its row expectations, which
    block downstream when a critical one fails (a spike of bad rows), and its column expectations,
    which do not (withholding the column is their handling; `inputs_promoted` blocks only what needs it).
    Two checks, not one per expectation: every check costs the run a dozen writes to Dagster's
    event log, and the per-expectation figures are in the checks' metadata table."""
    rules = quality.peek_rules(source)
    def listing(decides: str) -> str:
        return ", ".join(f"{r.check_name} ({r.severity})" for r in rules if r.decides == decides)
    return [
        dg.AssetCheckSpec(ROWS_CHECK, asset=asset_name, blocking=True,
                          description=f"Row expectations of expectations/{source}.json: {listing('row')}"),
        dg.AssetCheckSpec(COLUMNS_CHECK, asset=asset_name,
                          description=f"Column expectations of expectations/{source}.json: {listing('column')}"),
    ]


def suite_check_results(asset_name: str, outcome: "quality.ValidationOutcome", docs: str | None) -> list[dg.AssetCheckResult]:
    return [_suite_check(asset_name, ROWS_CHECK, outcome, "row", docs),
            _suite_check(asset_name, COLUMNS_CHECK, outcome, "column", docs)]


def _suite_check(asset_name: str, check_name: str, outcome: "quality.ValidationOutcome", decides: str,
                 docs: str | None) -> dg.AssetCheckResult:
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
        asset_key=asset_name, check_name=check_name, passed=not failed, metadata=metadata,
        severity=dg.AssetCheckSeverity.ERROR if critical else dg.AssetCheckSeverity.WARN,
    )


def _expectations_table(summaries: dict[str, dict]) -> str:
    lines = ["| expectation | severity | decides | unexpected | % | mostly | observed | passed | sample |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in summaries.items():
        decided = s.get("reason") or s.get("status") or ""
        pct = s.get("unexpected_percent")
        sample = ", ".join(str(v) for v in (s.get("sample_unexpected") or [])[:3])
        lines.append(f"| {name} | {s['severity']} | {decided} | {s.get('unexpected_count', '')} | "
                     f"{'' if pct is None else f'{pct:.3f}'} | {s.get('mostly', '')} | {_short(s.get('observed_value'))} | "
                     f"{'yes' if s['success'] else '**no**'} | {sample.replace('|', '/')} |")
    return "\n".join(lines)


def _short(value) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= 30 else text[:27] + "..."


def validation_file(lake: Lake, source: str, ds: date) -> Path:
    return lake.reports / "validations" / source / f"{ds.isoformat()}.json"


def data_docs_index(lake: Lake) -> Path:
    return lake.reports / "data_docs" / "index.html"


def _validated(lake: Lake, source: str, ds: date, raw: pa.Table, settings) -> tuple["quality.ValidationOutcome", str]:
    outcome = actionable.validate(raw, source, ds, settings)
    write_table(lake, "actionable", f"column_status_{source}", ds, quality.column_status_table(outcome, source, ds))
    quality.save_validation(outcome, validation_file(lake, source, ds))
    return outcome, str(data_docs_index(lake))


def data_quality_docs_asset(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """One Data Docs build per day for all sources: a build costs most of a second whatever its size."""

    @dg.asset(
        name="data_quality_docs", group_name="actionable", partitions_def=partitions, kinds={"great_expectations"},
        deps=[f"actionable_{source}" for source in SUITE_SOURCES],
        description="Great Expectations Data Docs for the day's validations: data/reports/data_docs/index.html.",
    )
    def _asset(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds = pyramid.lake(), partition_day(context)
        files = [validation_file(lake, source, ds) for source in SUITE_SOURCES]
        index = quality.build_data_docs(quality.load_validations(f for f in files if f.exists()),
                                        data_docs_index(lake).parent)
        return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(index)),
                                              "validations": len([f for f in files if f.exists()])})

    return _asset


def _suite_metadata(result: actionable.CleanResult, docs: str) -> dict:
    outcome = result.validation
    return {
        "withheld_columns": ", ".join(result.withheld) or "none",
        "warned_columns": ", ".join(sorted({quality.base_column(c.column) for c in outcome.column_status
                                             if c.status == "warned"})) or "none",
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
            withheld += [(r["source"], r["column"], r["expectation"]) for r in table.to_pylist() if r["status"] == "withheld"]
    return withheld


def blocked_for_day(lake: Lake, pyramid_map: PyramidMap, ds: date) -> "quality.Blocked":
    """What the columns withheld on `ds` block upward (segments, campaigns, goals, metrics)."""
    return quality.blocked_by(pyramid_map, withheld_for_day(lake, ds))


def inputs_check(blocked: "quality.Blocked") -> dg.AssetCheckResult:
    metadata = {"withheld": ", ".join(blocked.columns) or "none"}
    for kind in ("segments", "campaigns", "goals", "metrics"):
        items = getattr(blocked, kind)
        metadata[f"blocked_{kind}"] = ", ".join(f"{k} ({'; '.join(v)})" for k, v in items.items()) or "none"
    return dg.AssetCheckResult(check_name=INPUTS_CHECK, passed=not blocked, metadata=metadata,
                               severity=dg.AssetCheckSeverity.ERROR, description=blocked.describe())


def _clean_result_metadata(lake: Lake, name: str, ds: date, result: actionable.CleanResult) -> dict:
    write_table(lake, "actionable", f"quarantine_{name}", ds, result.quarantine)
    metadata = write_table(lake, "actionable", name, ds, result.table, **result.accounting())
    metadata.pop("balanced", None)
    for reason, count in _reason_counts(result.quarantine).items():
        metadata[f"quarantined/{reason}"] = count
    return metadata


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
        check_specs=[_accounting_spec("actionable_profiles"), *_suite_specs("profiles", "actionable_profiles")],
        description="Profile snapshot as of the day: latest update wins, PII removed, consent known.",
    )
    def actionable_profiles(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
        lake, ds, settings = pyramid.lake(), partition_day(context), pyramid.pyramid_map().actionable
        con = connect()
        raw = read_partition(con, lake.partition_file("raw", "profiles", ds))
        previous = previous_partition(lake, "actionable", "profiles", ds, start)
        outcome, docs = _validated(lake, "profiles", ds, raw, settings)
        result = actionable.update_profiles(con, raw, previous, ds, settings, validation=outcome)
        metadata = _clean_result_metadata(lake, "profiles", ds, result)
        metadata.update(_suite_metadata(result, docs))
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
        raw = read_partition(con, lake.partition_file("raw", "erasure_requests", ds))
        previous = previous_partition(lake, "actionable", "erased_users", ds, start)
        erased = actionable.update_erasures(con, raw, previous)
        return dg.MaterializeResult(metadata=write_table(lake, "actionable", "erased_users", ds, erased))

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
            check_specs=[_accounting_spec(asset_name), *_suite_specs(name, asset_name)],
            description=f"Typed, validated {name}, deduplicated on {key_column} within the lookback; "
                        "refused rows go to quarantine with every reason.",
        )
        def _asset(context: dg.AssetExecutionContext, pyramid: PyramidResource) -> dg.MaterializeResult:
            lake, ds, settings = pyramid.lake(), partition_day(context), pyramid.pyramid_map().actionable
            con = connect()
            raw = read_partition(con, lake.partition_file("raw", name, ds))
            known_users = read_partition(con, lake.partition_file("actionable", "profiles", ds)).select(["user_id"])
            seen = read_partitions(con, lake, "actionable", name, lookback_days(ds, settings.dedup_lookback_days, start),
                                   columns=key_column)
            outcome, docs = _validated(lake, name, ds, raw, settings)
            result = clean(con, raw, ds, known_users, seen, settings, validation=outcome)
            metadata = _clean_result_metadata(lake, name, ds, result)
            metadata.update(_suite_metadata(result, docs))
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
        events = read_partition(con, lake.partition_file("actionable", "events", ds))
        transactions = read_partition(con, lake.partition_file("actionable", "transactions", ds))
        daily = features.user_daily(con, events, transactions)
        return dg.MaterializeResult(metadata=write_table(lake, "actionable", "user_daily", ds, daily))

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
        profiles = read_partition(con, lake.partition_file("actionable", "profiles", ds))
        erased = read_partition(con, lake.partition_file("actionable", "erased_users", ds))
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


def erasure_sets(lake: Lake, ds: date, start: date) -> tuple[list[str], list[str]]:
    """(every user known to be erased, those whose request is new on `ds`).

    Known to be erased: the erased users as of `ds` and as of the latest materialized day, so that
    re-running an old day (which re-lands its raw rows from the landing files) never brings back a user
    erased since. New on `ds`: in the erased users of `ds` but not of the day before (all of them on
    the first day, or when that partition is missing)."""
    con = connect()
    as_of = set(read_partition(con, lake.partition_file("actionable", "erased_users", ds)).column("user_id").to_pylist())
    known = set(as_of)
    days = lake.partitions("actionable", "erased_users")
    if days and days[-1] > ds:
        known |= set(read_partition(con, lake.partition_file("actionable", "erased_users", days[-1]))
                     .column("user_id").to_pylist())
    before: set = set()
    previous = ds - timedelta(days=1)
    if ds > start and lake.has_partition("actionable", "erased_users", previous):
        before = set(read_partition(con, lake.partition_file("actionable", "erased_users", previous))
                     .column("user_id").to_pylist())
    known.discard(None)
    return sorted(known), sorted(u for u in as_of - before if u is not None)


def erasure_check(lake: Lake, ds: date, erased: list[str], new: list[str]) -> dg.AssetCheckResult:
    """Scan the day's files for every erased user, and the whole lake for the users whose request is
    new today (the request records excepted). Earlier days were proven clean by earlier runs, so the
    nightly cost does not grow with history except on days with new requests."""
    found = erasure.find_erased(lake, erased, only_day=ds)
    for table, n in (erasure.find_erased(lake, new) if new else {}).items():
        found[table] = max(found.get(table, 0), n)
    return dg.AssetCheckResult(
        check_name=ERASURE_CHECK, passed=not found, severity=dg.AssetCheckSeverity.ERROR,
        metadata={"erased_users": len(erased), "tables_scanned": len(erasure.lake_tables(lake)),
                  "found": ", ".join(f"{t}: {n} rows" for t, n in found.items()) or "none"},
        description=("erased users still found in " + ", ".join(f"{t} ({n} rows)" for t, n in found.items()))
        if found else "no erased user in any file of the lake",
    )


def daily_activity(lake: Lake, ds: date, window_days: int, start: date) -> pa.Table:
    """user_daily rows known on `ds` for activity days in the `window_days` ending on `ds`.

    Activity of a day can only land on or after that day, so the landing partitions of the window
    hold all of it; partitions after `ds` are never read, which keeps re-runs reproducible."""
    first = ds - timedelta(days=window_days - 1)
    days = [first + timedelta(days=n) for n in range(window_days) if first + timedelta(days=n) >= start]
    activity = read_partitions(connect(), lake, "actionable", "user_daily", days)
    if activity is None:
        raise MissingPartition(f"actionable/user_daily has no partition between {first} and {ds}")
    return connect().sql(
        "SELECT * FROM activity WHERE activity_date BETWEEN ? AND ?", params=[first, ds]
    ).to_arrow_table()
