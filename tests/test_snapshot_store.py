"""The daily snapshot tables stored as deltas (assets/snapshots.py over assets/delta_store.py): every day read back
equals the full table written the old way, deltas hold the changed cells only, an erasure on a delta day and a
re-run of an earlier day leave every day rebuilt exactly, and the catalog view is the newest full table."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets import delta_store, snapshots
from assets.catalog import build_catalog
from assets.erasure import erase_users
from assets.lake import Lake, connect, read_partition, write_parquet_atomic
from assets.snapshots import SNAPSHOTS, read_day, shift_moves, store_day
from assets.suppression import SUPPRESSION_SCHEMA

START = date(2026, 10, 1)
DAYS = 16
FEATURES = ("actionable", "user_features")
AUDIENCES = ("campaigns", "audiences")
MOVES = shift_moves(["days_since"], ["history_days", "complete_7d"])


def _features(day: date, rng: np.random.Generator, state: dict) -> pa.Table:
    """A feature-like snapshot: 10 users join a day, a tenth are active (days_since 0, a new score, NULL when 0),
    the others' days_since grow by one; history_days and complete_7d are the same on every row."""
    n = (day - START).days
    users = [f"u{k:04d}" for k in range(200 + 10 * n)]
    for user in users:
        since, score = state.get(user, (None, None))
        if rng.random() < 0.1:
            value = float(rng.integers(0, 4))
            since, score = 0, value or None
        elif since is not None:
            since += 1
        state[user] = (since, score)
    return pa.table(
        {
            "user_id": users,
            "as_of": pa.array([day] * len(users), pa.date32()),
            "days_since": pa.array([state[u][0] for u in users], pa.int64()),
            "score": pa.array([state[u][1] for u in users], pa.float64()),
            "history_days": pa.array([n + 1] * len(users), pa.int64()),
            "complete_7d": [n + 1 >= 7] * len(users),
        }
    )


def _audiences(day: date, rng: np.random.Generator, _state: dict) -> pa.Table:
    """An audience-like snapshot keyed by campaign and user: a fifth of the users leave or enter each day."""
    rows = sorted((c, f"u{k:04d}") for c in ("a", "b") for k in range(300) if rng.random() < 0.8 or k < 150)
    return pa.table(
        {
            "as_of": pa.array([day] * len(rows), pa.date32()),
            "campaign_id": [c for c, _ in rows],
            "user_id": [u for _, u in rows],
            "arm": ["holdout" if u[-1] == "0" else "treatment" for _, u in rows],
        }
    )


def _old_way(make) -> dict[date, pa.Table]:
    rng, state = np.random.default_rng(7), {}
    return {START + timedelta(days=n): make(START + timedelta(days=n), rng, state) for n in range(DAYS)}


def _stored(tmp_path, states: dict[date, pa.Table], table: tuple[str, str], **moves) -> Lake:
    lake = Lake(tmp_path / "stored")
    for day, full in states.items():
        store_day(lake, *table, day, full, START, **moves)
    return lake


def _as_read_the_old_way(tmp_path, states: dict[date, pa.Table], table: tuple[str, str]) -> dict[date, pa.Table]:
    """What `read_partition` returned for each day when every day was written in full."""
    lake, read = Lake(tmp_path / "old"), {}
    for day, full in states.items():
        write_parquet_atomic(full, lake.partition_file(*table, day))
        read[day] = read_partition(connect(), lake.partition_file(*table, day))
    return read


def _kinds(lake: Lake, table: tuple[str, str]) -> dict[date, bool]:
    """day -> stored as a delta."""
    return {d: delta_store.is_delta(pq.read_schema(lake.partition_file(*table, d))) for d in lake.partitions(*table)}


def _stored_rows(lake: Lake, table: tuple[str, str]) -> int:
    return sum(pq.read_metadata(lake.partition_file(*table, d)).num_rows for d in lake.partitions(*table))


def test_every_feature_day_reads_back_as_the_old_full_table(tmp_path):
    states = _old_way(_features)
    lake = _stored(tmp_path, states, FEATURES, moves=MOVES)
    for day, table in _as_read_the_old_way(tmp_path, states, FEATURES).items():
        assert read_day(lake, *FEATURES, day).equals(table), day
    full = [day for day, delta in _kinds(lake, FEATURES).items() if not delta]
    assert full == [START, START + timedelta(days=15)]  # a tenth active a day: 14 days of deltas hold less than a day
    assert _stored_rows(lake, FEATURES) < sum(t.num_rows for t in states.values()) / 2


def test_a_feature_delta_holds_only_the_changed_cells():
    states = _old_way(_features)
    day, base = START + timedelta(days=4), START + timedelta(days=5)
    layout = replace(SNAPSHOTS[FEATURES], moves=MOVES)
    delta = delta_store.table_delta(states[base], states[day], layout, day, base=base.isoformat(), gap=-1)
    assert delta is not None
    later = {r["user_id"]: r for r in states[base].to_pylist()}
    differs = {  # the rows the later day's, moved back a day, do not give: the active or rescored users
        r["user_id"]
        for r in states[day].to_pylist()
        if _back_a_day(later[r["user_id"]]["days_since"]) != r["days_since"]
        or later[r["user_id"]]["score"] != r["score"]
    }
    kept = delta.filter(pc.invert(delta.column(delta_store.REMOVED)))
    assert set(kept.column("user_id").to_pylist()) == differs and len(differs) < states[day].num_rows / 4
    assert kept.column("history_days").null_count == kept.num_rows  # set by the move, never stored
    removed = delta.filter(delta.column(delta_store.REMOVED))
    assert removed.column("user_id").to_pylist() == [f"u{k:04d}" for k in range(240, 250)]  # new on the later day
    assert delta_store.apply_delta(states[base], delta, day, layout).equals(states[day])


def _back_a_day(days_since: int | None) -> int | None:
    return None if days_since is None else days_since - 1


def test_audiences_with_users_leaving_read_back_and_store_less(tmp_path):
    states = _old_way(_audiences)
    lake = _stored(tmp_path, states, AUDIENCES)
    for day, table in _as_read_the_old_way(tmp_path, states, AUDIENCES).items():
        assert read_day(lake, *AUDIENCES, day).equals(table), day
    full = [day for day, delta in _kinds(lake, AUDIENCES).items() if not delta]
    assert full == [START + timedelta(days=n) for n in (0, 8, 15)]  # a fifth leave or enter a day: chains of 7
    assert _stored_rows(lake, AUDIENCES) < sum(t.num_rows for t in states.values()) / 2


def test_an_erasure_on_a_delta_day_leaves_every_day_rebuilt_without_the_user(tmp_path):
    states = _old_way(_features)
    lake = _stored(tmp_path, states, FEATURES, moves=MOVES)
    erase_users(lake, ["u0003", "u0245"])  # u0245 joined on day 5: removed from the day 4 delta too
    read = _as_read_the_old_way(tmp_path, states, FEATURES)
    for day, table in read.items():
        kept = table.filter(pc.invert(pc.is_in(table.column("user_id"), pa.array(["u0003", "u0245"]))))
        assert read_day(lake, *FEATURES, day).equals(kept), day


def test_rewriting_an_earlier_day_keeps_every_day_exact(tmp_path):
    states = _old_way(_features)
    lake = _stored(tmp_path, states, FEATURES, moves=MOVES)
    day = START + timedelta(days=10)  # a delta on day 11, the base of day 9's delta
    changed = states[day].slice(1)  # a re-run without the first user
    store_day(lake, *FEATURES, day, changed, START, moves=MOVES)
    states[day] = changed
    for d, table in _as_read_the_old_way(tmp_path, states, FEATURES).items():
        assert read_day(lake, *FEATURES, d).equals(table), d
    store_day(lake, *FEATURES, day, changed, START, moves=MOVES)  # again: nothing changes
    for d, table in _as_read_the_old_way(tmp_path / "again", states, FEATURES).items():
        assert read_day(lake, *FEATURES, d).equals(table), d


def test_the_catalog_view_is_the_newest_full_table(tmp_path):
    states = _old_way(_features)
    lake = _stored(tmp_path, states, FEATURES, moves=MOVES)
    build_catalog(lake, [])
    con = connect(str(lake.warehouse), read_only=True)
    try:
        viewed = con.sql("SELECT * EXCLUDE (ds) FROM user_features ORDER BY ALL").fetchall()
    finally:
        con.close()
    newest = states[max(states)]
    assert viewed == sorted(tuple(r.values()) for r in newest.to_pylist())


def test_a_day_above_the_cell_bound_keeps_the_day_before_full(tmp_path, monkeypatch):
    states = _old_way(_audiences)
    lake = _stored(tmp_path / "deltas", states, AUDIENCES)
    assert any(_kinds(lake, AUDIENCES).values())
    monkeypatch.setattr(snapshots, "DELTA_MAX_CELLS", min(t.num_rows for t in states.values()))
    day = START + timedelta(days=10)  # stored as a delta on day 11: rewriting day 11 stores day 10 in full first
    store_day(lake, *AUDIENCES, day + timedelta(days=1), states[day + timedelta(days=1)], START)
    assert not _kinds(lake, AUDIENCES)[day]
    bounded = _stored(tmp_path / "bounded", states, AUDIENCES)
    assert not any(_kinds(bounded, AUDIENCES).values())
    for d, table in _as_read_the_old_way(tmp_path, states, AUDIENCES).items():
        assert read_day(lake, *AUDIENCES, d).equals(table), d
        assert read_day(bounded, *AUDIENCES, d).equals(table), d


SUPPRESSIONS = ("actionable", "channel_suppressions")
CHANNELS = ("email", "push", "web", "*")


def _suppressions(day: date, rng: np.random.Generator, state: dict) -> pa.Table:
    """A suppression-like cumulative table: a few (user, channel) opt-outs a day, now and then an earlier `since`
    for a pair already there (a late event), sorted as `update_suppressions` sorts it."""
    moment = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    for _ in range(int(rng.integers(3, 9))):
        pair = (f"u{int(rng.integers(0, 400)):04d}", CHANNELS[int(rng.integers(0, len(CHANNELS)))])
        state[pair] = min(state.get(pair, moment), moment)
    if state and rng.random() < 0.5:
        pair = sorted(state)[int(rng.integers(0, len(state)))]
        state[pair] = state[pair] - timedelta(days=3)
    rows = sorted(state.items())
    return pa.table(
        {"user_id": [u for (u, _), _ in rows], "channel": [c for (_, c), _ in rows], "since": [s for _, s in rows]}
    ).cast(SUPPRESSION_SCHEMA)


def test_suppression_days_read_back_and_store_the_new_rows_only(tmp_path):
    states = _old_way(_suppressions)
    lake = _stored(tmp_path, states, SUPPRESSIONS)
    for day, table in _as_read_the_old_way(tmp_path, states, SUPPRESSIONS).items():
        assert read_day(lake, *SUPPRESSIONS, day).equals(table), day
    assert sum(_kinds(lake, SUPPRESSIONS).values()) >= DAYS // 2
    assert _stored_rows(lake, SUPPRESSIONS) < sum(t.num_rows for t in states.values()) / 2


def test_an_erasure_on_a_suppression_delta_day_and_a_rerun_keep_every_day_exact(tmp_path):
    states = _old_way(_suppressions)
    lake = _stored(tmp_path, states, SUPPRESSIONS)
    day = START + timedelta(days=10)
    assert _kinds(lake, SUPPRESSIONS)[day]
    erased = [u for u in states[day].column("user_id").to_pylist() if u not in states[START].column("user_id")][:2]
    erase_users(lake, erased, only_day=day)  # on the delta day only, then everywhere
    erase_users(lake, erased)
    states = {d: t.filter(pc.invert(pc.is_in(t.column("user_id"), pa.array(erased)))) for d, t in states.items()}
    for d, table in _as_read_the_old_way(tmp_path / "erased", states, SUPPRESSIONS).items():
        assert read_day(lake, *SUPPRESSIONS, d).equals(table), d
    changed = states[day].slice(1)  # a re-run of an earlier day without its first row
    store_day(lake, *SUPPRESSIONS, day, changed, START)
    states[day] = changed
    for d, table in _as_read_the_old_way(tmp_path / "rerun", states, SUPPRESSIONS).items():
        assert read_day(lake, *SUPPRESSIONS, d).equals(table), d


def _chain_bound_holds(lake: Lake, table: tuple[str, str], exact: bool = False) -> None:
    """Each delta is on the day after it and counts the cells of its chain (its own and the deltas' below it, down to
    a full day), fewer than its day's full table: a read costs one full table and less than the day below it. Without
    re-runs the counts are exact."""
    kinds, chain = _kinds(lake, table), 0
    for day in lake.partitions(*table):
        if not kinds[day]:
            chain = 0
            continue
        moves = delta_store.delta_moves(pq.read_schema(lake.partition_file(*table, day)))
        chain += moves["cells"]
        # a re-run below a delta leaves its chain counting more than is left below it, never less
        assert moves["base"] == (day + timedelta(days=1)).isoformat(), day
        assert moves["chain"] == chain if exact else moves["chain"] >= chain, day
        content = read_day(lake, *table, day).drop_columns(["ds"])
        assert chain < delta_store.stored_cells(content, SNAPSHOTS[table]), day


def _files(lake: Lake, table: tuple[str, str]) -> dict[date, bytes]:
    return {d: lake.partition_file(*table, d).read_bytes() for d in lake.partitions(*table)}


def test_the_chain_rule_bounds_every_read_and_a_rerun_of_every_day_writes_the_same_files(tmp_path):
    for table, make, moves in (
        (FEATURES, _features, {"moves": MOVES}),
        (AUDIENCES, _audiences, {}),
        (SUPPRESSIONS, _suppressions, {}),
    ):
        states = _old_way(make)
        lake = _stored(tmp_path / table[1], states, table, **moves)
        _chain_bound_holds(lake, table, exact=True)
        written = _files(lake, table)
        for day, full in states.items():  # the whole range re-run in day order
            store_day(lake, *table, day, full, START, **moves)
        assert _files(lake, table) == written, table
        assert _files(_stored(tmp_path / f"{table[1]}_again", states, table, **moves), table) == written, table


def test_a_chain_longer_than_a_week_reads_back_after_an_erasure_and_a_rerun(tmp_path):
    states = _old_way(_suppressions)
    lake = _stored(tmp_path, states, SUPPRESSIONS)
    assert [d for d, delta in _kinds(lake, SUPPRESSIONS).items() if not delta] == [START, START + timedelta(days=15)]
    day = START + timedelta(days=3)  # 12 deltas below the newest day
    erased = states[day].column("user_id").to_pylist()[:3]
    erase_users(lake, erased)
    states = {d: t.filter(pc.invert(pc.is_in(t.column("user_id"), pa.array(erased)))) for d, t in states.items()}
    store_day(lake, *SUPPRESSIONS, day, states[day], START)  # a re-run: day 2 rewritten as a delta on it
    assert not _kinds(lake, SUPPRESSIONS)[day] and _kinds(lake, SUPPRESSIONS)[day - timedelta(days=1)]
    for d, table in _as_read_the_old_way(tmp_path, states, SUPPRESSIONS).items():
        assert read_day(lake, *SUPPRESSIONS, d).equals(table), d
    _chain_bound_holds(lake, SUPPRESSIONS)


def test_a_projected_day_is_the_whole_day_with_only_those_columns(tmp_path):
    states = _old_way(_features)
    lake = _stored(tmp_path, states, FEATURES, moves=MOVES)
    kinds = _kinds(lake, FEATURES)
    assert any(kinds.values()) and not all(kinds.values())  # full days and delta days alike
    for day in states:
        whole = read_day(lake, *FEATURES, day)
        for columns in (["score", "user_id"], {"ds", "days_since", "not_a_column"}, ["history_days"]):
            expected = whole.select([c for c in whole.column_names if c in columns])
            assert read_day(lake, *FEATURES, day, columns).equals(expected), (day, columns)
            path = lake.partition_file(*FEATURES, day)
            if not kinds[day]:
                assert read_partition(connect(), path, columns).equals(expected), (day, columns)
