"""goals/goal_cohort stored as checkpoints and deltas (assets/delta_store.py, `COHORT_STORAGE`): every day
read back equals the full table the old way wrote, the stored rows grow with the entrants and changes, not with
days x users, an erasure leaves a chain that rebuilds the tables without the user, and the catalog view is the
newest full table."""

from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets import delta_store
from assets.catalog import build_catalog
from assets.erasure import erase_users
from assets.goal_cohort import COHORT_STORAGE, update_goal_cohort
from assets.lake import Lake, connect, write_parquet_atomic
from assets.pyramid_map import Goal, Metric
from assets.time_to_event import with_event_days
from pipelines.layers.goals import COHORT, compact_stored, previous_stored, stored_day

START = date(2026, 10, 1)
DAYS = 16
METRICS = {
    "deposit_rate": Metric("deposit_rate", "", 1, "deposits > 0"),
    "time_to_deposit": Metric(
        id="time_to_deposit", condition="deposits > 0", kind="time_to_event", anchor="first_exposure", horizon_days=7
    ),
}
GOALS = [
    Goal("grow_deposits", "engagement", "deposit_rate", "even", 0.1, ()),
    Goal("deposit_sooner", "engagement", "time_to_deposit", "even", 0.1, ()),
]


def _inputs(day: date, rng: np.random.Generator) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(audience as of day - 1, exports of day - 1, user_daily of the days up to day): the audience grows by 25
    users a day, a fifth of it is exported each day, a tenth deposits on each day."""
    n = (day - START).days
    users = [f"u{k:04d}" for k in range(100 + 25 * n)]
    audience = pa.table(
        {
            "campaign_id": ["even"] * len(users),
            "user_id": users,
            "arm": ["holdout" if u[-1] in "01" else "treatment" for u in users],
        }
    )
    exported = [u for u in users if rng.random() < 0.2]
    exports = pa.table({"campaign_id": ["even"] * len(exported), "user_id": exported})
    days = [day - timedelta(days=k) for k in range(7) if day - timedelta(days=k) >= START]
    rows = [(u, d) for d in days for u in users if rng.random() < 0.1]
    activity = pa.table(
        {
            "user_id": [u for u, _ in rows],
            "activity_date": pa.array([d for _, d in rows], pa.date32()),
            "deposits": [1] * len(rows),
        }
    )
    return audience, exports, activity


def _cohort(previous: pa.Table | None, day: date, rng: np.random.Generator) -> pa.Table:
    """The day's full goal_cohort as the goal_metrics step computes it."""
    audience, exports, activity = _inputs(day, rng)
    cohort = update_goal_cohort(previous, audience, exports, activity, GOALS, METRICS, day, START)
    return with_event_days(cohort, previous, activity, GOALS, METRICS, None, day, START)


def _old_way() -> dict[date, pa.Table]:
    """Every day's full table, each built on the day before's full table in memory (a full copy a day)."""
    rng, states, table = np.random.default_rng(11), {}, None
    for n in range(DAYS):
        day = START + timedelta(days=n)
        table = states[day] = _cohort(table, day, rng)
    return states


def _stored(tmp_path) -> Lake:
    """The days run as the goals layer does: the day before read back from the lake, the day written, the day
    before compacted."""
    lake, rng = Lake(tmp_path), np.random.default_rng(11)
    for n in range(DAYS):
        day = START + timedelta(days=n)
        table = _cohort(previous_stored(lake, COHORT, day, START), day, rng)
        write_parquet_atomic(table, lake.partition_file("goals", COHORT, day))
        compact_stored(lake, COHORT, day - timedelta(days=1), START)
    return lake


def _stored_rows(lake: Lake) -> int:
    return sum(
        pq.read_metadata(lake.partition_file("goals", COHORT, day)).num_rows for day in lake.partitions("goals", COHORT)
    )


def test_every_day_reads_back_as_the_old_full_table_and_storage_falls(tmp_path):
    states, lake = _old_way(), _stored(tmp_path)
    for day, table in states.items():
        assert stored_day(lake, COHORT, day).equals(table), day
    stored = {day: pq.read_schema(lake.partition_file("goals", COHORT, day)) for day in states}
    full = [day for day, schema in stored.items() if not delta_store.is_delta(schema)]
    assert full == [START, START + timedelta(days=7), START + timedelta(days=14), START + timedelta(days=15)]
    old_rows = sum(t.num_rows for t in states.values())
    assert _stored_rows(lake) < old_rows / 2  # 3,889 stored rows against 9,200 written the old way


def test_a_cohort_delta_holds_the_entrants_and_the_changed_rows():
    states = _old_way()
    before, after = states[START + timedelta(days=4)], states[START + timedelta(days=5)]
    delta = delta_store.table_delta(before, after, COHORT_STORAGE)
    assert delta is not None and delta_store.is_delta(delta.schema)
    keys = ["goal_id", "metric", "campaign_id", "arm", "user_id"]
    old = {tuple(r[k] for k in keys): r for r in before.drop(["ds"]).to_pylist()}
    changed = [r for r in after.drop(["ds"]).to_pylist() if old.get(tuple(r[k] for k in keys)) != r]
    assert sorted(delta.drop(["ds"]).to_pylist(), key=lambda r: tuple(r[k] for k in keys)) == changed
    moved = [r for r in changed if tuple(r[k] for k in keys) in old]  # exposed, anchored or reached since
    assert moved and len(changed) < after.num_rows / 3
    assert delta_store.apply_delta(before, delta, START + timedelta(days=5), COHORT_STORAGE).equals(after)
    # a row that left (which no day of the cohort does) is not expressible: the day stays full
    assert delta_store.table_delta(before, after.slice(1), COHORT_STORAGE) is None


def test_an_erased_user_leaves_every_day_rebuilt(tmp_path):
    states, lake = _old_way(), _stored(tmp_path)
    erase_users(lake, ["u0003"])
    for day, table in states.items():
        kept = table.filter(pa.compute.not_equal(table.column("user_id"), "u0003"))
        assert stored_day(lake, COHORT, day).equals(kept), day


def test_the_catalog_view_is_the_newest_full_table(tmp_path):
    states, lake = _old_way(), _stored(tmp_path)
    build_catalog(lake, [])
    con = connect(str(lake.warehouse), read_only=True)
    try:
        viewed = con.sql("SELECT * EXCLUDE (ds) FROM goal_cohort ORDER BY ALL").fetchall()
    finally:
        con.close()
    newest = states[max(states)].drop(["ds"])
    assert viewed == sorted(tuple(r.values()) for r in newest.to_pylist())
