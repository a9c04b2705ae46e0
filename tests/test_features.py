"""user_daily and user_features against an independent plain-Python computation of the same fixture."""

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone

import pyarrow as pa
import pytest

from assets import actionable, contract, measures
from assets.features import feature_column_names, features_schema, user_features
from assets.lake import connect
from assets.pyramid_map import load_map

SAMPLE = load_map()  # the savings app's declared measures and features
DAILY_COLUMNS = measures.daily_columns(SAMPLE.measures)
DAILY_COUNTS = [m.name for m in SAMPLE.measures.values() if m.agg in ("count", "count_distinct")]
DAILY_AMOUNTS = [m.name for m in SAMPLE.measures.values() if m.agg == "sum"]
WINDOWED_SUMS = list(SAMPLE.features.windowed_sums)

WINDOWS = [7, 30, 90]
AS_OF = date(2026, 10, 31)
TYPE_COLUMNS = {
    "page_view": "page_views",
    "screen_view": "screen_views",
    "search": "searches",
    "feature_use": "feature_uses",
    "impression": "impressions",
    "click": "clicks",
    "conversion": "conversions",
    "unsubscribe": "unsubscribes",
}
TXN_COLUMNS = {
    "deposit": ("deposits", "deposit_amount"),
    "card_payment": ("card_payments", "card_amount"),
    "transfer_in": ("transfers_in", "transfer_in_amount"),
    "transfer_out": ("transfers_out", "transfer_out_amount"),
}


def at(day, hour=12, minute=0, offset_hours=0):
    """An instant given as local wall time at a UTC offset, as a UTC datetime."""
    local = datetime(2026, 10, day, hour, minute, tzinfo=timezone(timedelta(hours=offset_hours)))
    return local.astimezone(UTC)


def events_table(rows):
    columns = {name: [] for name in contract.SCHEMAS["events"].names}
    for i, (user, event_type, when, session, feature, *channel) in enumerate(rows):
        values = {
            "event_id": f"e{i}",
            "user_id": user,
            "event_type": event_type,
            "occurred_at": when,
            "session_id": session,
            "channel": channel[0] if channel else "app",
            "campaign_id": None,
            "touchpoint_id": None,
            "properties": json.dumps({"feature": feature} if feature else {}),
        }
        for name, value in values.items():
            columns[name].append(value)
    return pa.table(columns).cast(contract.SCHEMAS["events"])


def txns_table(rows):
    columns = {name: [] for name in contract.SCHEMAS["transactions"].names}
    for i, (user, txn_type, when, amount, status) in enumerate(rows):
        values = {
            "txn_id": f"t{i}",
            "user_id": user,
            "occurred_at": when,
            "amount": amount,
            "currency": "EUR",
            "txn_type": txn_type,
            "merchant_category": None,
            "status": status,
        }
        for name, value in values.items():
            columns[name].append(value)
    return pa.table(columns).cast(contract.SCHEMAS["transactions"])


EVENTS = [
    ("u1", "session_start", at(1, 8), "s1", None),
    ("u1", "page_view", at(1, 8, 5), "s1", None),
    ("u1", "feature_use", at(1, 8, 6), "s1", "budget_tool"),
    ("u1", "feature_use", at(1, 8, 7), "s1", "savings_goal"),
    ("u1", "page_view", at(1, 23, 30, offset_hours=-5), "s2", "budget_tool"),  # 04:30 UTC on the 2nd
    ("u1", "search", at(2, 9), None, None, "web"),
    ("u2", "impression", at(1, 1, 0, offset_hours=2), "s9", None, "email"),  # 23:00 UTC on 30 September
    ("u2", "click", at(1, 10), "s9", None, "email"),
    ("u2", "impression", at(1, 12), None, None, "email"),  # shown, not used: not the last channel
    ("u2", "conversion", at(1, 10, 1), "s9", None),
    ("u2", "unsubscribe", at(1, 10, 2), "s10", None),
    ("u2", "screen_view", at(1, 11), "s10", None),
    ("u2", "feature_use", at(1, 11, 1), "s10", "budget_tool"),
]
TXNS = [
    ("u1", "deposit", at(1, 9), 100.0, "completed"),
    ("u1", "deposit", at(1, 10), 50.5, "completed"),
    ("u1", "deposit", at(1, 11), 999.0, "pending"),
    ("u1", "card_payment", at(2, 10), 20.25, "completed"),
    ("u3", "transfer_in", at(1, 6), 300.0, "completed"),
    ("u3", "transfer_out", at(1, 7), 80.0, "completed"),
    ("u3", "card_payment", at(1, 8), 5.0, "failed"),
    ("u4", "deposit", at(3, 8), 7.0, "failed"),  # no completed row: no daily row
]


def expected_daily(events, txns):
    """The user_daily contract computed row by row in Python."""
    rows = defaultdict(
        lambda: {
            **{c: 0 for c in DAILY_COUNTS},
            **{c: 0.0 for c in DAILY_AMOUNTS},
            "first_txn_at": None,
            "last_txn_at": None,
            "last_seen_at": None,
            "last_channel_at": None,
            "last_channel": None,
            "_sessions": set(),
        }
    )
    for user, event_type, when, session, feature, *channel in events:
        row = rows[(user, when.astimezone(UTC).date())]
        channel = channel[0] if channel else "app"
        latest = row["last_channel_at"]
        if event_type != "impression" and (latest is None or (latest, row["last_channel"]) < (when, channel)):
            row["last_channel_at"], row["last_channel"] = when, channel
        row["events"] += 1
        if event_type in TYPE_COLUMNS:
            row[TYPE_COLUMNS[event_type]] += 1
        if event_type == "feature_use" and feature == "budget_tool":
            row["budget_tool_uses"] += 1
        if session is not None:
            row["_sessions"].add(session)
        row["last_seen_at"] = max(filter(None, [row["last_seen_at"], when]))
    for user, txn_type, when, amount, status in txns:
        if status != "completed":
            continue
        row = rows[(user, when.astimezone(UTC).date())]
        count_column, amount_column = TXN_COLUMNS[txn_type]
        row[count_column] += 1
        row[amount_column] += amount
        row["txns"] += 1
        row["first_txn_at"] = min(filter(None, [row["first_txn_at"], when]))
        row["last_txn_at"] = max(filter(None, [row["last_txn_at"], when]))
    result = []
    for (user, day), row in sorted(rows.items()):
        row["sessions"] = len(row.pop("_sessions"))
        result.append({"user_id": user, "activity_date": day, **row})
    return [{c: r[c] for c in DAILY_COLUMNS} for r in result]


def test_user_daily_matches_plain_python():
    daily = measures.user_daily(connect(), SAMPLE, events_table(EVENTS), txns_table(TXNS))
    assert daily.column_names == DAILY_COLUMNS
    assert daily.schema == measures.daily_schema(SAMPLE.measures)
    assert daily.to_pylist() == expected_daily(EVENTS, TXNS)


def test_user_daily_spot_values():
    rows = {
        (r["user_id"], r["activity_date"]): r
        for r in measures.user_daily(connect(), SAMPLE, events_table(EVENTS), txns_table(TXNS)).to_pylist()
    }
    u1 = rows[("u1", date(2026, 10, 1))]
    assert (u1["events"], u1["sessions"], u1["feature_uses"], u1["budget_tool_uses"]) == (4, 1, 2, 1)
    assert (u1["deposits"], u1["deposit_amount"], u1["txns"]) == (2, 150.5, 2)
    assert rows[("u1", date(2026, 10, 2))]["page_views"] == 1  # the -05:00 event is on the UTC day after
    assert rows[("u2", date(2026, 9, 30))]["impressions"] == 1
    assert ("u4", date(2026, 10, 3)) not in rows


def test_user_daily_of_nothing_is_empty_with_schema():
    daily = measures.user_daily(
        connect(), SAMPLE, actionable.empty_table("events"), actionable.empty_table("transactions")
    )
    assert daily.num_rows == 0 and daily.schema == measures.daily_schema(SAMPLE.measures)


def daily_row(user, day, **values):
    row = {c: 0 for c in DAILY_COUNTS} | {c: 0.0 for c in DAILY_AMOUNTS}
    row |= {"first_txn_at": None, "last_txn_at": None, "last_seen_at": None, "last_channel_at": None}
    row |= {"last_channel": None, "user_id": user, "activity_date": day, **values}
    return row


def ts(day: date, hour=12):
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


D = lambda n: AS_OF - timedelta(days=n)  # noqa: E731  the day n days before as_of
PARTITION_A = [
    daily_row(
        "u1",
        D(0),
        events=3,
        sessions=1,
        page_views=2,
        last_seen_at=ts(D(0), 9),
        last_channel_at=ts(D(0), 8),
        last_channel="app",
    ),
    daily_row(
        "u1",
        D(3),
        events=1,
        sessions=1,
        searches=1,
        deposits=1,
        deposit_amount=100.0,
        txns=1,
        first_txn_at=ts(D(3), 8),
        last_txn_at=ts(D(3), 8),
        last_seen_at=ts(D(3), 7),
    ),
    daily_row("u1", D(6), events=2, budget_tool_uses=1, feature_uses=2, last_seen_at=ts(D(6))),
    daily_row("u1", D(7), events=5, clicks=2, impressions=3, last_seen_at=ts(D(7))),  # outside 7d
    daily_row(
        "u1",
        D(29),
        card_payments=2,
        card_amount=40.0,
        txns=2,
        transfers_out=1,
        transfer_out_amount=10.0,
        first_txn_at=ts(D(29), 6),
        last_txn_at=ts(D(29), 20),
    ),
    daily_row("u1", D(30), events=1, conversions=1, last_seen_at=ts(D(30))),  # outside 30d
    daily_row(
        "u1", D(89), transfers_in=1, transfer_in_amount=500.0, txns=1, first_txn_at=ts(D(89)), last_txn_at=ts(D(89))
    ),
    daily_row("u1", D(90), events=9, deposits=9, deposit_amount=9.0, txns=9, last_seen_at=ts(D(90))),  # outside 90d
    daily_row(
        "u2",
        D(10),
        events=1,
        sessions=1,
        unsubscribes=1,
        last_seen_at=ts(D(10)),
        last_channel_at=ts(D(10)),
        last_channel="app",
    ),
    daily_row("u6", D(1), events=4, last_seen_at=ts(D(1))),  # not in profiles
    daily_row("u5", D(1), events=4, last_seen_at=ts(D(1))),  # erased
]
PARTITION_B = [  # landed later: more activity of days already seen
    daily_row(
        "u1",
        D(3),
        events=2,
        sessions=1,
        deposits=1,
        deposit_amount=25.5,
        txns=1,
        first_txn_at=ts(D(3), 6),
        last_txn_at=ts(D(3), 6),
        last_seen_at=ts(D(3), 22),
    ),
    daily_row("u2", D(10), deposits=1, deposit_amount=1.0, txns=1, first_txn_at=ts(D(10)), last_txn_at=ts(D(10))),
    daily_row("u2", D(10), events=0, last_seen_at=ts(D(10)), last_channel_at=ts(D(10)), last_channel="web"),  # a tie
    daily_row("u1", D(0), events=0, last_seen_at=ts(D(0), 10), last_channel_at=ts(D(0), 10), last_channel="email"),
    daily_row(
        "u2", D(-1), events=7, last_seen_at=ts(D(-1)), last_channel_at=ts(D(-1)), last_channel="email"
    ),  # after as_of
]
PROFILES = pa.table(
    {
        "user_id": ["u1", "u2", "u3", "u4", "u5"],
        "updated_at": [ts(date(2026, 10, 1))] * 5,
        "signup_at": [
            ts(date(2026, 1, 1)),
            ts(date(2026, 10, 20), 23),
            ts(AS_OF, 1),
            ts(date(2020, 2, 29)),
            ts(date(2026, 1, 1)),
        ],
        "country": ["FR", "DE", "ES", None, "NL"],
        "birth_year": pa.array([1990, None, 2010, 1961, 1980], pa.int32()),
        "plan": ["basic", "gold", "basic", "free", "free"],
        "consent_personalization": [True, False, None, True, True],
    }
).cast(contract.SCHEMAS["profiles"])
ERASED = pa.table({"user_id": ["u5", "u-unknown"], "requested_at": [ts(D(2))] * 2}).cast(
    contract.SCHEMAS["erased_users"]
)


def expected_features(daily_rows, profiles, erased, as_of, windows, history_start=None):
    """The user_features contract computed row by row in Python."""
    erased_ids = set(erased.column("user_id").to_pylist())
    oldest = as_of - timedelta(days=max(windows) - 1)
    oldest = max(oldest, history_start) if history_start else oldest
    history = (as_of - history_start).days + 1 if history_start else None
    days = defaultdict(lambda: None)
    for row in daily_rows:
        if not oldest <= row["activity_date"] <= as_of:
            continue
        key = (row["user_id"], row["activity_date"])
        if days[key] is None:
            days[key] = dict(row)
            continue
        merged = days[key]
        for c in DAILY_COUNTS + DAILY_AMOUNTS:
            merged[c] += row[c]
        merged["first_txn_at"] = min(filter(None, [merged["first_txn_at"], row["first_txn_at"]]), default=None)
        merged["last_txn_at"] = max(filter(None, [merged["last_txn_at"], row["last_txn_at"]]), default=None)
        merged["last_seen_at"] = max(filter(None, [merged["last_seen_at"], row["last_seen_at"]]), default=None)
        if row["last_channel_at"] and (
            merged["last_channel_at"] is None
            or (merged["last_channel_at"], merged["last_channel"]) < (row["last_channel_at"], row["last_channel"])
        ):
            merged["last_channel_at"], merged["last_channel"] = row["last_channel_at"], row["last_channel"]
    result = []
    for profile in sorted(profiles.to_pylist(), key=lambda p: p["user_id"]):
        user = profile["user_id"]
        if user in erased_ids:
            continue
        mine = [r for (u, _), r in days.items() if u == user and r is not None]
        seen = [r["last_seen_at"] for r in mine if r["last_seen_at"]]
        firsts = [r["first_txn_at"] for r in mine if r["first_txn_at"]]
        lasts = [r["last_txn_at"] for r in mine if r["last_txn_at"]]
        channels = [(r["last_channel_at"], r["last_channel"]) for r in mine if r["last_channel_at"]]
        row = {
            "user_id": user,
            "as_of": as_of,
            "country": profile["country"],
            "plan": profile["plan"],
            "age_band": age_band(profile["birth_year"], as_of),
            "tenure_days": max((as_of - profile["signup_at"].date()).days, 0),
            "consent_personalization": profile["consent_personalization"],
            "days_since_last_seen": (as_of - max(seen).date()).days if seen else None,
            "first_txn_at": min(firsts) if firsts else None,
            "last_txn_at": max(lasts) if lasts else None,
            "last_channel": max(channels)[1] if channels else None,
        }
        for w in windows:
            inside = [r for r in mine if r["activity_date"] > as_of - timedelta(days=w)]
            covered = history is None or history >= w
            row.update({f"{k}_{w}d": v if covered else None for k, v in window_values(inside).items()})
        row["history_days"] = history
        row.update({f"complete_{w}d": history is None or history >= w for w in windows})
        row.update({f"{k}_history": v for k, v in window_values(mine).items()})
        result.append(row)
    return result


def window_values(inside):
    """Windowed feature name (without its suffix) -> value over the daily rows `inside`."""
    values = {name: sum(r[name] for r in inside) for name in WINDOWED_SUMS}
    values["active_days"] = len({r["activity_date"] for r in inside if r["events"] > 0})
    values["txn_days"] = len({r["activity_date"] for r in inside if r["txns"] > 0})
    values["balance_in"] = sum(r["deposit_amount"] + r["transfer_in_amount"] for r in inside)
    values["balance_out"] = sum(r["card_amount"] + r["transfer_out_amount"] for r in inside)
    for amount, count in (
        ("deposit_amount", "deposits"),
        ("card_amount", "card_payments"),
        ("transfer_in_amount", "transfers_in"),
        ("transfer_out_amount", "transfers_out"),
    ):
        n = sum(r[count] for r in inside)
        values[f"avg_{amount}"] = sum(r[amount] for r in inside) / n if n else None
    return values


def age_band(birth_year, as_of):
    if birth_year is None:
        return "unknown"
    age = as_of.year - birth_year
    for low, high, label in [
        (18, 24, "18-24"),
        (25, 34, "25-34"),
        (35, 44, "35-44"),
        (45, 54, "45-54"),
        (55, 64, "55-64"),
    ]:
        if low <= age <= high:
            return label
    return "65+" if age >= 65 else "unknown"


@pytest.fixture(scope="module")
def features():
    daily = pa.Table.from_pylist(PARTITION_A + PARTITION_B, schema=measures.daily_schema(SAMPLE.measures))
    return user_features(connect(), SAMPLE, daily, PROFILES, ERASED, AS_OF, WINDOWS)


def test_features_columns_and_types(features):
    assert features.column_names == feature_column_names(SAMPLE, WINDOWS)
    assert features.schema == features_schema(SAMPLE, WINDOWS)
    assert features.schema.field("deposits_30d").type == pa.int64()
    assert features.schema.field("balance_in_90d").type == pa.float64()


def test_last_channel_is_the_latest_used_one(features):
    by_user = {r["user_id"]: r["last_channel"] for r in features.to_pylist()}
    # u1: a later landing's email event wins; u2: a tie at the same instant goes to the greater name, and a
    # day after as_of is not read; u3 and u4 have no event
    assert by_user == {"u1": "email", "u2": "web", "u3": None, "u4": None}


def test_features_match_plain_python(features):
    expected = expected_features(PARTITION_A + PARTITION_B, PROFILES, ERASED, AS_OF, WINDOWS)
    actual = features.to_pylist()
    assert [r["user_id"] for r in actual] == ["u1", "u2", "u3", "u4"]
    assert [r["user_id"] for r in expected] == ["u1", "u2", "u3", "u4"]  # zip below must not truncate
    for got, want in zip(actual, expected):
        assert got.keys() == want.keys()
        for column in want:
            assert (
                got[column] == pytest.approx(want[column])
                if isinstance(want[column], float)
                else got[column] == want[column]
            ), (got["user_id"], column)


def test_features_spot_values(features):
    u1, u2, u3, u4 = features.to_pylist()
    assert (u1["events_7d"], u1["events_30d"], u1["events_90d"]) == (8, 13, 14)
    assert (u1["deposits_7d"], u1["deposit_amount_7d"], u1["txn_days_7d"]) == (2, 125.5, 1)
    assert (u1["active_days_7d"], u1["active_days_30d"]) == (3, 4)
    assert (u1["balance_in_90d"], u1["balance_out_30d"], u1["balance_out_7d"]) == (625.5, 50.0, 0.0)
    assert (u1["first_txn_at"], u1["last_txn_at"]) == (ts(D(89)), ts(D(3), 8))
    assert (u1["avg_deposit_amount_7d"], u1["avg_card_amount_30d"], u1["avg_card_amount_7d"]) == (62.75, 20.0, None)
    assert (u1["transfers_in_90d"], u1["transfer_in_amount_90d"], u1["avg_transfer_in_amount_90d"]) == (1, 500.0, 500.0)
    assert (u1["transfers_out_30d"], u1["avg_transfer_out_amount_30d"], u1["transfers_in_30d"]) == (1, 10.0, 0)
    assert (u1["age_band"], u1["tenure_days"], u1["days_since_last_seen"]) == ("35-44", 303, 0)
    assert (u2["age_band"], u2["tenure_days"], u2["days_since_last_seen"], u2["events_7d"]) == ("unknown", 11, 10, 0)
    assert (u3["age_band"], u3["tenure_days"], u3["consent_personalization"]) == ("unknown", 0, None)
    assert (u4["age_band"], u4["days_since_last_seen"], u4["events_90d"], u4["balance_in_90d"]) == ("65+", None, 0, 0.0)
    assert u4["tenure_days"] == (AS_OF - date(2020, 2, 29)).days


def test_features_without_activity_or_erasures():
    table = user_features(connect(), SAMPLE, None, PROFILES, None, AS_OF, [7])
    assert table.column_names == feature_column_names(SAMPLE, [7])
    assert table.column("user_id").to_pylist() == ["u1", "u2", "u3", "u4", "u5"]
    assert set(table.column("events_7d").to_pylist()) == {0}
    assert set(table.column("days_since_last_seen").to_pylist()) == {None}


def test_windows_not_covered_by_history_are_null_and_flagged():
    """History starts at D(9): ten days known. The 7-day window is complete; 30 and 90 days are not."""
    daily = pa.Table.from_pylist(PARTITION_A + PARTITION_B, schema=measures.daily_schema(SAMPLE.measures))
    table = user_features(connect(), SAMPLE, daily, PROFILES, ERASED, AS_OF, WINDOWS, history_start=D(9))
    assert table.schema == features_schema(SAMPLE, WINDOWS)
    u1, u2, _, u4 = table.to_pylist()
    assert (u1["history_days"], u1["complete_7d"], u1["complete_30d"], u1["complete_90d"]) == (10, True, False, False)
    # by hand: u1's rows of D(0)..D(9) are D(0), D(3) (two partitions), D(6) and D(7)
    assert (u1["events_7d"], u1["events_30d"], u1["events_90d"], u1["events_history"]) == (8, None, None, 3 + 3 + 2 + 5)
    assert (u1["deposits_30d"], u1["deposits_history"], u1["deposit_amount_history"]) == (None, 2, 125.5)
    assert (u1["active_days_history"], u1["card_payments_history"], u1["avg_card_amount_history"]) == (4, 0, None)
    assert (u1["balance_in_90d"], u1["avg_deposit_amount_30d"], u1["avg_deposit_amount_history"]) == (None, None, 62.75)
    assert (u1["first_txn_at"], u1["last_txn_at"]) == (ts(D(3), 6), ts(D(3), 8))  # D(29) and D(89) are not known
    # u2's only activity, on D(10), is before history: not seen, zero so far, unknown over 30 days
    assert (u2["days_since_last_seen"], u2["events_7d"], u2["events_history"], u2["deposits_30d"]) == (None, 0, 0, None)
    assert (u4["events_history"], u4["balance_in_history"]) == (0, 0.0)


@pytest.mark.parametrize("start_days_before", [0, 6, 29, 89, 200])
def test_coverage_matches_plain_python(start_days_before):
    rows = PARTITION_A + PARTITION_B
    daily = pa.Table.from_pylist(rows, schema=measures.daily_schema(SAMPLE.measures))
    start = D(start_days_before)
    table = user_features(connect(), SAMPLE, daily, PROFILES, ERASED, AS_OF, WINDOWS, history_start=start)
    expected = expected_features(rows, PROFILES, ERASED, AS_OF, WINDOWS, history_start=start)
    for got, want in zip(table.to_pylist(), expected, strict=True):
        assert got == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in want.items()}
    flags = [table.column(f"complete_{w}d")[0].as_py() for w in WINDOWS]
    assert flags == [start_days_before + 1 >= w for w in WINDOWS]


def test_the_untyped_null_columns_are_typed_as_a_cast_types_them(tmp_path):
    from assets.features import _typed
    from assets.lake import write_parquet_atomic

    con = connect()
    raw = con.sql(
        "SELECT 'u' || range AS user_id, NULL AS a, range AS b, NULL AS c, NULL AS d FROM range(5000)"
    ).to_arrow_table()
    raw = pa.Table.from_batches(raw.to_batches(max_chunksize=1500))  # several chunks, as a large result has
    types = {"user_id": pa.string(), "a": pa.int64(), "b": pa.int64(), "c": pa.float64(), "d": pa.int64()}
    schema = pa.schema(list(types.items()))
    typed, cast = _typed(raw, schema), raw.cast(schema)
    assert typed.equals(cast) and typed.schema == cast.schema
    chunks = [[len(k) for k in c.chunks] for c in cast.columns]
    assert [[len(k) for k in c.chunks] for c in typed.columns] == chunks and len(chunks[0]) > 1
    write_parquet_atomic(typed, tmp_path / "typed.parquet")
    write_parquet_atomic(cast, tmp_path / "cast.parquet")
    assert (tmp_path / "typed.parquet").read_bytes() == (tmp_path / "cast.parquet").read_bytes()
