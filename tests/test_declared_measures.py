"""The savings app's measures and features, declared in pipelines/sample/pyramid.yaml, give exactly the tables
the hand-written aggregates gave: digests and values pinned from that code (tests/declared_sample.py)."""

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from assets.pyramid_map import load_map
from tests.declared_sample import sample_tables, table_digest

DAILY_DIGEST = "d4d8f758ed66d11052ee054dad011b68e6a26999d4ac00db544a04148d6faa23"  # 2378 rows
FEATURE_DIGESTS = {
    date(2026, 10, 7): "29f33db4ccc2f8efb7366a3de7005d703dff4f5b4c163ad372191ce3a2caea58",  # 498 rows
    date(2026, 10, 8): "bdf416d38d993ba2c8fe7fec44af98241227de04277b0982457c99e4d84d43b4",  # 500 rows
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return sample_tables(tmp_path_factory.mktemp("declared"), load_map())


def _row(table, **keys):
    return next(r for r in table.to_pylist() if all(r[k] == v for k, v in keys.items()))


def test_user_daily_is_the_pinned_table(tables):
    daily = tables.daily
    assert daily.num_rows == 2378
    row = _row(daily, user_id="u0000107", activity_date=date(2026, 10, 6))
    assert (row["events"], row["sessions"], row["budget_tool_uses"], row["deposits"]) == (9, 1, 1, 2)
    assert (row["deposit_amount"], row["last_channel"]) == (597.12, "web")
    assert row["last_txn_at"] == datetime(2026, 10, 6, 21, 31, 42, tzinfo=UTC)
    assert table_digest(daily) == DAILY_DIGEST


def test_user_features_are_the_pinned_tables(tables):
    last = tables.features[date(2026, 10, 8)]
    row = _row(last, user_id="u0000024")
    assert (row["deposits_7d"], row["deposit_amount_7d"], row["avg_deposit_amount_7d"]) == (3, 584.16, 194.72)
    assert (row["balance_in_history"], row["active_days_7d"], row["txn_days_7d"]) == (584.16, 4, 2)
    assert (row["days_since_last_seen"], row["last_channel"], row["age_band"], row["tenure_days"]) == (
        0,
        "app",
        "35-44",
        154,
    )
    assert (row["complete_7d"], row["history_days"]) == (True, 8)
    assert sum(r["events_7d"] for r in last.to_pylist()) == 16413
    assert {day: table_digest(table) for day, table in tables.features.items()} == FEATURE_DIGESTS


SEGMENT_DIGESTS = {  # segment_membership of those features (no previous day), from the code before the declarations
    date(2026, 10, 7): "a4a53a48c8bfb615a1f2b5c49ab4b293ec0059be0f7c4d5611d530241d6a30a2",  # 1034 rows
    date(2026, 10, 8): "5666b2bc06045110d1733654aa423f1563bce95ccd8ac47b68d7e7c9199a6ec9",  # 1070 rows
}


def test_segment_tables_are_the_pinned_ones(tables):
    from assets.features import monotone_windowed
    from assets.segments import segment_membership

    sample = load_map()
    digests, sizes = {}, {}
    for day, table in tables.features.items():
        members = segment_membership(table, sample.segments.definitions, day, None, monotone=monotone_windowed(sample))
        digests[day] = table_digest(members)
        sizes[day] = sum(r["segment_id"] == "steady_depositors" for r in members.to_pylist())
    assert sizes == {date(2026, 10, 7): 76, date(2026, 10, 8): 83}
    assert digests == SEGMENT_DIGESTS


def test_every_declared_feature_has_lineage():
    from assets.features import feature_column_names
    from assets.lineage import column_lineage

    for declared in (load_map(), load_map(RETAIL)):
        windows = list(declared.segments.windows)
        fed = set().union(*column_lineage(declared).values())
        flags = {"user_id", "as_of", "history_days", *(f"complete_{w}d" for w in windows)}
        assert [c for c in feature_column_names(declared, windows) if c not in fed | flags] == []
    fed = column_lineage(load_map(RETAIL))[("transactions", "amount")]
    assert {"revenue_7d", "avg_basket_30d", "avg_basket_history"} <= fed and "orders_7d" in fed  # a row rule
    assert "visits_7d" not in fed


# --- a second domain, declared only: tests/fixtures/retail/pyramid.yaml ------------------------------------

RETAIL = Path(__file__).parent / "fixtures" / "retail" / "pyramid.yaml"
AS_OF = date(2026, 10, 20)
WINDOWS = [7, 30]


def _at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=UTC)


# (user, event_type, day, hour, session)
EVENTS = [
    ("a", "product_view", 19, 9, "s1"),
    ("a", "product_view", 19, 10, "s1"),
    ("a", "page_view", 2, 10, "s2"),
    ("b", "product_view", 18, 8, "s3"),
    ("b", "product_view", 18, 9, "s4"),
    ("b", "product_view", 20, 23, "s5"),
    ("c", "page_view", 10, 12, None),
    ("d", "product_view", 1, 12, "s6"),  # outside the 30-day window
]
# (user, txn_type, day, hour, amount, status, category)
TXNS = [
    ("a", "purchase", 19, 11, 60.0, "completed", "shoes"),
    ("a", "purchase", 20, 8, 45.5, "completed", "socks"),
    ("a", "purchase", 20, 9, 10.0, "pending", "socks"),
    ("a", "refund", 15, 9, 20.0, "completed", "shoes"),
    ("b", "purchase", 5, 12, 30.0, "completed", "hats"),
    ("c", "purchase", 12, 12, 80.0, "completed", "shoes"),
    ("c", "purchase", 14, 12, 90.0, "completed", "shoes"),
    ("c", "refund", 14, 13, 90.0, "failed", "shoes"),
]
USERS = {"a": ("FR", 2026, True), "b": ("DE", 2025, True), "c": ("FR", 2024, False), "d": ("IT", 2026, True)}


def _retail_tables():
    import pyarrow as pa

    from assets import contract

    events = pa.Table.from_pylist(
        [
            {"event_id": f"e{i}", "user_id": u, "event_type": t, "occurred_at": _at(d, h), "session_id": s}
            for i, (u, t, d, h, s) in enumerate(EVENTS)
        ],
        schema=contract.SCHEMAS["events"],
    )
    txns = pa.Table.from_pylist(
        [
            {
                "txn_id": f"t{i}",
                "user_id": u,
                "txn_type": t,
                "occurred_at": _at(d, h),
                "amount": a,
                "currency": "EUR",
                "status": s,
                "merchant_category": c,
            }
            for i, (u, t, d, h, a, s, c) in enumerate(TXNS)
        ],
        schema=contract.SCHEMAS["transactions"],
    )
    profiles = pa.Table.from_pylist(
        [
            {
                "user_id": u,
                "country": c,
                "plan": None,
                "birth_year": None,
                "consent_personalization": consent,
                "signup_at": datetime(year, 10, 1, tzinfo=UTC),
            }
            for u, (c, year, consent) in USERS.items()
        ]
    )
    return events, txns, profiles


def _expected_retail(user: str) -> dict:
    """The retail map's features of one user, recomputed row by row from its declarations' words."""
    country, year, consent = USERS[user]
    orders = [(d, a, c) for u, t, d, _, a, s, c in TXNS if u == user and t == "purchase" and s == "completed"]
    refunds = [d for u, t, d, *_ in TXNS if u == user and t == "refund"]
    row = {"user_id": user, "as_of": AS_OF, "country": country, "consent_personalization": consent}
    row["tenure_days"] = (AS_OF - date(year, 10, 1)).days
    last = max(
        (_at(d, h) for u, t, d, h, _, s, _ in TXNS if u == user and t == "purchase" and s == "completed"), default=None
    )
    row["last_order_at"] = last
    row["days_since_last_order"] = None if last is None else (AS_OF - last.date()).days
    for w in WINDOWS:

        def inside(day: int, w: int = w) -> bool:
            return (AS_OF - date(2026, 10, day)).days < w

        views = [1 for u, t, d, *_ in EVENTS if u == user and t == "product_view" and inside(d)]
        sessions = {(d, s) for u, _, d, _, s in EVENTS if u == user and s is not None and inside(d)}
        mine = [(d, a) for d, a, _ in orders if inside(d)]
        row[f"visits_{w}d"] = len(sessions)
        row[f"product_views_{w}d"] = len(views)
        row[f"orders_{w}d"] = len(mine)
        row[f"revenue_{w}d"] = float(sum(a for _, a in mine))
        row[f"refunds_{w}d"] = len([d for d in refunds if inside(d)])
        row[f"order_days_{w}d"] = len({d for d, _ in mine})
        row[f"avg_basket_{w}d"] = row[f"revenue_{w}d"] / len(mine) if mine else None
        row[f"money_moves_{w}d"] = row[f"orders_{w}d"] + row[f"refunds_{w}d"]
    return row


def test_a_second_domain_runs_from_its_declarations_alone():
    from assets.features import feature_column_names, monotone_windowed, user_features
    from assets.lake import connect
    from assets.measures import user_daily
    from assets.segments import segment_membership

    retail = load_map(RETAIL)
    events, txns, profiles = _retail_tables()
    con = connect()
    daily = user_daily(con, retail, events, txns)
    assert daily.column_names == ["user_id", "activity_date", *retail.measures]
    assert ("c", date(2026, 10, 14)) in {(r["user_id"], r["activity_date"]) for r in daily.to_pylist()}
    table = user_features(con, retail, daily, profiles, None, AS_OF, WINDOWS)
    assert table.column_names == feature_column_names(retail, WINDOWS)
    for row in table.to_pylist():
        expected = _expected_retail(row["user_id"])
        assert {k: row[k] for k in expected} == expected, row["user_id"]
    members = segment_membership(table, retail.segments.definitions, AS_OF, monotone=monotone_windowed(retail))
    got = {(r["segment_id"], r["user_id"]) for r in members.to_pylist()}
    expected = {
        (seg, u)
        for u in USERS
        if USERS[u][2]  # consented
        for seg, rule in (
            ("big_spenders", lambda r: r["orders_7d"] >= 2 and r["revenue_7d"] >= 100),
            ("browsers", lambda r: r["product_views_7d"] >= 3 and r["orders_7d"] == 0),
        )
        if rule(_expected_retail(u))
    }
    assert got == expected == {("big_spenders", "a"), ("browsers", "b")}


# --- broken declarations ---------------------------------------------------------------------------------------


def _problems(tmp_path, old: str, new: str) -> list[str]:
    from assets.pyramid_map import MapError

    text = RETAIL.read_text()
    assert old in text, old
    path = tmp_path / "pyramid.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(MapError) as raised:
        load_map(path)
    return [p.removeprefix(f"{path}:") for p in raised.value.problems]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "agg: sum, column: amount,",
            "agg: sum, column: amout,",
            "50: measures.revenue.column: 'amout' is not a column of transactions; did you mean 'amount'?",
        ),
        (
            "product_views: {source: events,",
            "product_views: {source: event,",
            "47: measures.product_views.source: unknown source 'event'; measures read events or transactions; did "
            "you mean 'events'?",
        ),
        (
            "where: \"event_type = 'product_view'\"",
            "where: \"event_type = 'product_view' or read_csv('x') is not null\"",
            "47: measures.product_views.where: 'READ_CSV('x')' is not allowed (ReadCSV); a filter may use the "
            "columns of events: event_id, user_id, event_type, occurred_at, session_id, channel, campaign_id, "
            "touchpoint_id, properties",
        ),
        (
            "windowed_sums: [visits,",
            "windowed_sums: [visit,",
            "61: features.windowed_sums[0]: unknown measure 'visit'; declared: visits, product_views, orders, "
            "revenue, categories, refunds, last_order_at; did you mean 'visits'?",
        ),
        (
            "avg_basket: {average: revenue, per: orders}",
            "avg_basket: {average: revenue, per: last_order_at}",
            "64: features.windowed.avg_basket.per: measure 'last_order_at' is a max; average reads a count or "
            "count_distinct or sum one",
        ),
        (
            "    order_days: {days_with: orders}",
            "    orders: {days_with: orders}",
            "63: features.windowed.orders: name clash: 'orders' is already a feature",
        ),
    ],
    ids=["misspelt_column", "unknown_source", "unsafe_where", "unknown_measure", "wrong_aggregate", "name_clash"],
)
def test_broken_declarations_name_the_key(tmp_path, old, new, expected, capsys):
    from pipelines.cli import main

    assert _problems(tmp_path, old, new) == [expected]
    capsys.readouterr()
    assert main(["--map", str(tmp_path / "pyramid.yaml"), "check"]) == 2  # the exit code of an invalid map
    assert expected in " ".join(capsys.readouterr().err.split())
