"""The analyst catalog: `warehouse.duckdb` holds views over the lake and nothing else.

It is rebuilt under a temporary name and renamed into place, so an analyst who has the old file open
(read-only) keeps a consistent catalog while the nightly run writes the next one, and never blocks it.
"""

from __future__ import annotations

from assets.crash_points import crash_point
from assets.lake import Lake, atomic_path, connect

# view name -> tables of the lake (layer, table) it unions. PII never reaches the lake above raw,
# and raw tables are not in the catalog.
CATALOG_VIEWS: dict[str, list[tuple[str, str]]] = {
    "events": [("actionable", "events")],
    "transactions": [("actionable", "transactions")],
    "profiles": [("actionable", "profiles")],
    "quarantine": [
        ("actionable", "quarantine_events"),
        ("actionable", "quarantine_transactions"),
        ("actionable", "quarantine_profiles"),
    ],
    "column_status": [
        ("actionable", "column_status_events"),
        ("actionable", "column_status_transactions"),
        ("actionable", "column_status_profiles"),
    ],
    "user_daily": [("actionable", "user_daily")],
    "user_touchpoint_daily": [("actionable", "user_touchpoint_daily")],
    "user_features": [("actionable", "user_features")],
    "segment_membership": [("segments", "segment_membership")],
    "segment_summary": [("segments", "segment_summary")],
    "segment_overlap": [("segments", "segment_overlap")],
    "segment_baselines": [("segments", "segment_baselines")],
    "audiences": [("campaigns", "audiences")],
    "goal_metrics": [("goals", "goal_metrics")],
    "goal_cohort": [("goals", "goal_cohort")],
    "goal_user_outcomes": [("goals", "goal_user_outcomes")],
    "north_star": [("goals", "north_star")],
    "north_star_contributions": [("goals", "north_star_contributions")],
}
# Views over the newest partition only: it is stored in full, and older partitions of these tables mostly as deltas
# (assets/delta_store.py): goal_user_outcomes and goal_cohort are cumulative, the newest alone is the whole current
# table; user_features, profiles and audiences are daily snapshots (assets/snapshots.py), read as of the newest day.
LATEST_ONLY = {"goal_user_outcomes", "goal_cohort", "user_features", "profiles", "audiences"}


def build_catalog(lake: Lake, touchpoint_ids: list[str]) -> list[str]:
    """Rebuild the catalog atomically; return the names of the views it holds."""
    views = dict(CATALOG_VIEWS)
    views["touchpoint_exports"] = [("touchpoints", tp) for tp in touchpoint_ids]
    created = []
    with atomic_path(lake.warehouse) as tmp:
        con = connect(str(tmp))
        try:
            for name, tables in views.items():
                globs = [_view_glob(lake, layer, table, name in LATEST_ONLY) for layer, table in tables]
                globs = [g for g in globs if g]
                if globs:
                    con.execute(f"CREATE VIEW {name} AS {_union_sql(globs)}")
                    created.append(name)
        finally:
            con.close()
        crash_point("catalog")
    return created


def _view_glob(lake: Lake, layer: str, table: str, latest_only: bool) -> str | None:
    """The files a view reads: every partition, or the newest only; None before the first partition."""
    days = lake.partitions(layer, table)
    if not days:
        return None
    return str(lake.partition_file(layer, table, days[-1])) if latest_only else lake.glob(layer, table)


def _union_sql(globs: list[str]) -> str:
    files = ", ".join("'" + g.replace("'", "''") + "'" for g in globs)
    return f"SELECT * FROM read_parquet([{files}], hive_partitioning = true, union_by_name = true)"
