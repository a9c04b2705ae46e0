"""Actionable layer, per user: daily aggregates and the feature table as of a date.

The names below are the contract (docs/contracts.md): segment rules may use only feature columns,
goal metrics only daily aggregate columns; the map is checked against these lists before a run.
"""

from __future__ import annotations

# Per user and activity day. Counts unless the name says amount; amounts are in the transaction's
# currency (the sample uses one currency per user).
DAILY_COUNTS = [
    "events",
    "sessions",
    "page_views",
    "screen_views",
    "searches",
    "feature_uses",
    "budget_tool_uses",
    "impressions",
    "clicks",
    "conversions",
    "unsubscribes",
    "deposits",
    "card_payments",
    "transfers_in",
    "transfers_out",
    "txns",
]
DAILY_AMOUNTS = ["deposit_amount", "card_amount", "transfer_in_amount", "transfer_out_amount"]
DAILY_TIMES = ["first_txn_at", "last_txn_at", "last_seen_at"]
DAILY_COLUMNS = ["user_id", "activity_date", *DAILY_COUNTS, *DAILY_AMOUNTS, *DAILY_TIMES]

# Summed over each window W (days ending at the as-of date) into `<name>_<W>d`.
WINDOWED_SUMS = [
    "events",
    "sessions",
    "page_views",
    "searches",
    "feature_uses",
    "budget_tool_uses",
    "impressions",
    "clicks",
    "conversions",
    "deposits",
    "deposit_amount",
    "card_payments",
    "card_amount",
    "txns",
]
# Derived per window: distinct active days, distinct days with a transaction, money in and out.
WINDOWED_DERIVED = ["active_days", "txn_days", "balance_in", "balance_out"]

PROFILE_FEATURES = ["country", "plan", "age_band", "tenure_days", "consent_personalization"]
RECENCY_FEATURES = ["days_since_last_seen", "first_txn_at", "last_txn_at"]


def feature_column_names(windows: list[int]) -> list[str]:
    """Every column of the user_features table for the given windows, in table order."""
    windowed = [f"{name}_{w}d" for w in windows for name in (*WINDOWED_SUMS, *WINDOWED_DERIVED)]
    return ["user_id", "as_of", *PROFILE_FEATURES, *RECENCY_FEATURES, *windowed]
