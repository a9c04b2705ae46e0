"""The savings app's measures and features, declared in pipelines/sample/pyramid.yaml, give exactly the tables
the hand-written aggregates gave: digests and values pinned from that code (tests/declared_sample.py)."""

from datetime import UTC, date, datetime

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
