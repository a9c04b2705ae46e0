"""A small generated sample through landing, cleaning, user_daily and user_features (no Dagster), for the
pinned comparison of the declared measures with the code they replaced (tests/test_declared_measures.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa

from assets import actionable, features, measures, profiles, raw
from assets.lake import Lake, connect
from assets.pyramid_map import PyramidMap
from pipelines.sample.generate import generate_sample

USERS, DAYS, SEED = 500, 8, 11


@dataclass
class SampleTables:
    daily: pa.Table  # every landing day's user_daily, concatenated in landing order
    features: dict[date, pa.Table]  # as-of day -> user_features


def table_digest(table: pa.Table) -> str:
    """sha256 over the column names, the types and every row's repr, in the table's order."""
    digest = hashlib.sha256(repr([(f.name, str(f.type)) for f in table.schema]).encode())
    for row in table.to_pylist():
        digest.update(repr(sorted(row.items(), key=lambda item: table.schema.names.index(item[0]))).encode())
    return digest.hexdigest()


def sample_tables(root: Path, pyramid_map: PyramidMap) -> SampleTables:
    """Generate the sample into `root`, clean each day and compute its user_daily, then the features of the
    last two days (history starting on the first day)."""
    generate_sample(root / "landing", users=USERS, days=DAYS, seed=SEED, pyramid_map=pyramid_map)
    lake, con, settings = Lake(root), connect(), pyramid_map.actionable
    windows = list(pyramid_map.segments.windows)
    days = [pyramid_map.start_date + timedelta(days=n) for n in range(DAYS)]
    snapshot, dailies, tables = None, [], {}
    for ds in days:
        landed = {
            name: raw.land(con, lake, pyramid_map.sources[name], ds) for name in ("events", "transactions", "profiles")
        }
        snapshot = profiles.update_profiles(con, landed["profiles"], snapshot, ds, settings).table
        known = snapshot.select(["user_id"])
        events = actionable.clean_events(con, landed["events"], ds, known, None, settings).table
        txns = actionable.clean_transactions(con, landed["transactions"], ds, known, None, settings).table
        dailies.append(measures.user_daily(con, pyramid_map, events, txns))
        if ds >= days[-2]:
            history = pa.concat_tables(dailies)
            tables[ds] = features.user_features(
                con, pyramid_map, history, snapshot, None, ds, windows, history_start=days[0]
            )
    return SampleTables(pa.concat_tables(dailies), tables)
