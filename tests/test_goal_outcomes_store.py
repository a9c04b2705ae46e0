"""goals/goal_user_outcomes stored as checkpoints and deltas: every day reads back the full table exactly,
and the deltas hold only the rows the day's move does not explain."""

from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets import delta_store
from assets.catalog import build_catalog
from assets.goal_cohort import OUTCOMES_STORAGE as OUTCOMES
from assets.goal_cohort import update_goal_user_outcomes
from assets.goals import GOAL_USER_DAY_SCHEMA
from assets.lake import Lake, connect, write_parquet_atomic
from pipelines.layers.goals import USER_OUTCOMES, compact_stored, previous_stored, stored_day

START = date(2026, 10, 1)


def _states(days: int, users: int = 300) -> dict[date, pa.Table]:
    """Full tables of a cohort measured every day (settled on the day itself), 10% of users succeeding."""
    rng = np.random.default_rng(5)
    states, table = {}, None
    for n in range(days):
        day = START + timedelta(days=n)
        present = [f"u{k:03d}" for k in range(min(users, 100 + 20 * n))]  # the cohort grows
        rows = [
            {"goal_id": "g", "metric": "m", "campaign_id": "c", "arm": "treatment", "user_id": u, "success": s}
            for u, s in zip(present, rng.random(len(present)) < 0.1)
        ]
        outcomes = GOAL_USER_DAY_SCHEMA.empty_table() if n == 3 else pa.Table.from_pylist(rows, GOAL_USER_DAY_SCHEMA)
        table = update_goal_user_outcomes(table, outcomes, day)
        states[day] = table
    return states


def _stored(tmp_path, days: int) -> tuple[Lake, dict[date, pa.Table]]:
    """The states of `days` days written in order as the goals layer does: each day, then the day before compacted."""
    lake, states = Lake(tmp_path), _states(days)
    for day, table in states.items():
        write_parquet_atomic(table, lake.partition_file("goals", "goal_user_outcomes", day))
        compact_stored(lake, USER_OUTCOMES, day - timedelta(days=1), START)
    return lake, states


def test_a_delta_rebuilds_the_day_exactly_and_is_small():
    states = _states(6)
    before, after = states[START + timedelta(days=4)], states[START + timedelta(days=5)]
    delta = delta_store.table_delta(before, after, OUTCOMES)
    assert delta is not None and delta_store.is_delta(delta.schema)
    assert delta.num_rows < after.num_rows / 3  # the successes and the new users only
    assert delta_store.apply_delta(before, delta, START + timedelta(days=5), OUTCOMES).equals(after)
    # a day without measurement (day 3) moves nobody on: its delta is empty, still exact
    quiet = delta_store.table_delta(states[START + timedelta(days=2)], states[START + timedelta(days=3)], OUTCOMES)
    assert quiet is not None and quiet.num_rows == 0
    assert delta_store.table_delta(after.slice(0, 0), after, OUTCOMES) is None  # every row new: nothing saved


def test_the_lake_keeps_checkpoints_and_deltas_and_reads_every_day_back(tmp_path):
    lake, states = _stored(tmp_path, 10)
    stored = {day: pq.read_schema(lake.partition_file("goals", "goal_user_outcomes", day)) for day in states}
    full = [day for day, schema in stored.items() if not delta_store.is_delta(schema)]
    assert full == [START, START + timedelta(days=7), START + timedelta(days=9)]  # checkpoints and the newest
    for day, table in states.items():
        assert stored_day(lake, USER_OUTCOMES, day).equals(table), day
        assert previous_stored(lake, USER_OUTCOMES, day + timedelta(days=1), START).equals(table), day
    compact_stored(lake, USER_OUTCOMES, START + timedelta(days=5), START)  # again: nothing changes
    assert pq.read_schema(lake.partition_file("goals", "goal_user_outcomes", START + timedelta(days=5))).equals(
        stored[START + timedelta(days=5)], check_metadata=True
    )


def test_the_catalog_view_is_the_newest_full_table(tmp_path):
    lake, states = _stored(tmp_path, 9)
    build_catalog(lake, [])
    con = connect(str(lake.warehouse), read_only=True)
    try:
        viewed = con.sql("SELECT * EXCLUDE (ds) FROM goal_user_outcomes ORDER BY ALL").fetchall()
    finally:
        con.close()
    newest = states[max(states)].drop(["ds"])
    assert viewed == sorted(tuple(r.values()) for r in newest.to_pylist())
