"""Actionable layer, per user: daily aggregates and the feature table as of a date.

The names below are the contract (docs/contracts.md): segment rules may use only feature columns,
goal metrics only daily aggregate columns; the map is checked against these lists before a run.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pyarrow as pa

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
# The counts of events that carry a touchpoint_id, per user, day and touchpoint (`user_touchpoint_daily`).
TOUCHPOINT_COUNTS = ["impressions", "clicks", "conversions", "unsubscribes"]
DAILY_AMOUNTS = ["deposit_amount", "card_amount", "transfer_in_amount", "transfer_out_amount"]
DAILY_TIMES = ["first_txn_at", "last_txn_at", "last_seen_at", "last_channel_at"]
DAILY_LABELS = ["last_channel"]
DAILY_COLUMNS = ["user_id", "activity_date", *DAILY_COUNTS, *DAILY_AMOUNTS, *DAILY_TIMES, *DAILY_LABELS]
LAST_CHANNEL = ["last_channel_at", "last_channel"]  # daily columns; `last_channel` is a feature too
# Impressions are shown to the user, not used by them: they do not make a channel the user's last.
USED_CHANNEL_FILTER = "event_type <> 'impression' AND channel IS NOT NULL"

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
    "transfers_in",
    "transfer_in_amount",
    "transfers_out",
    "transfer_out_amount",
]
# Derived per window: distinct active days, distinct days with a transaction, money in and out, and
# the average amount per completed transaction of each type (NULL without one).
AVERAGE_AMOUNTS = {  # feature name -> (amount column, count column) of user_daily
    "avg_deposit_amount": ("deposit_amount", "deposits"),
    "avg_card_amount": ("card_amount", "card_payments"),
    "avg_transfer_in_amount": ("transfer_in_amount", "transfers_in"),
    "avg_transfer_out_amount": ("transfer_out_amount", "transfers_out"),
}
WINDOWED_DERIVED = ["active_days", "txn_days", "balance_in", "balance_out", *AVERAGE_AMOUNTS]

PROFILE_FEATURES = ["country", "plan", "age_band", "tenure_days", "consent_personalization"]
RECENCY_FEATURES = ["days_since_last_seen", "first_txn_at", "last_txn_at", "last_channel"]


# A window's sums grow with the window (counts, days and positive amounts): the same sums over the
# part of a window that history covers are lower bounds of the whole window's (docs/segments.md).
MONOTONE_WINDOWED = [*WINDOWED_SUMS, "active_days", "txn_days", "balance_in", "balance_out"]
HISTORY = "history"  # suffix of the columns over the covered part of the largest window


def feature_column_names(windows: list[int]) -> list[str]:
    """Every column of the user_features table for the given windows, in table order."""
    names = (*WINDOWED_SUMS, *WINDOWED_DERIVED)
    windowed = [f"{name}_{w}d" for w in windows for name in names]
    coverage = ["history_days", *(f"complete_{w}d" for w in windows), *(f"{name}_{HISTORY}" for name in names)]
    return ["user_id", "as_of", *PROFILE_FEATURES, *RECENCY_FEATURES, *windowed, *coverage]


def history_days(as_of: date, history_start: date | None) -> int | None:
    """Days of history up to as_of, the first day of the lake included (None: history start unknown)."""
    return None if history_start is None else max((as_of - history_start).days + 1, 0)


def window_complete(window: int, days: int | None) -> bool:
    """A window of `window` days ending at as_of is complete when history covers every day of it."""
    return days is None or days >= window


# --- transforms ------------------------------------------------------------------------------------

UTC = pa.timestamp("us", tz="UTC")
EVENT_TYPE_COUNTS = {
    "page_views": "page_view",
    "screen_views": "screen_view",
    "searches": "search",
    "feature_uses": "feature_use",
    "impressions": "impression",
    "clicks": "click",
    "conversions": "conversion",
    "unsubscribes": "unsubscribe",
}


def exact_money(expression: str) -> str:
    """Money is summed as a decimal: a parallel sum of doubles depends on the order of the rows, and
    re-running a partition must give the same bytes."""
    return f"CAST({expression} AS DECIMAL(38, 4))"


TXN_TYPE_AGGREGATES = {  # txn_type -> (count column, amount column)
    "deposit": ("deposits", "deposit_amount"),
    "card_payment": ("card_payments", "card_amount"),
    "transfer_in": ("transfers_in", "transfer_in_amount"),
    "transfer_out": ("transfers_out", "transfer_out_amount"),
}
AGE_BANDS = [(18, 24, "18-24"), (25, 34, "25-34"), (35, 44, "35-44"), (45, 54, "45-54"), (55, 64, "55-64")]


def daily_schema() -> pa.Schema:
    return pa.schema(
        [("user_id", pa.string()), ("activity_date", pa.date32())]
        + [(c, pa.int64()) for c in DAILY_COUNTS]
        + [(c, pa.float64()) for c in DAILY_AMOUNTS]
        + [(c, UTC) for c in DAILY_TIMES]
        + [(c, pa.string()) for c in DAILY_LABELS]
    )


def _utc_date(column: str) -> str:
    return f"CAST(timezone('UTC', {column}) AS DATE)"


def _event_aggregates_sql() -> str:
    counts = ",\n".join(f"count(*) FILTER (WHERE event_type = '{t}') AS {c}" for c, t in EVENT_TYPE_COUNTS.items())
    return f"""
        SELECT user_id, {_utc_date("occurred_at")} AS activity_date,
               count(*) AS events,
               count(DISTINCT session_id) AS sessions,
               {counts},
               count(*) FILTER (WHERE event_type = 'feature_use'
                                AND json_extract_string(properties, '$.feature') = 'budget_tool') AS budget_tool_uses,
               max(occurred_at) AS last_seen_at,
               max(occurred_at) FILTER (WHERE {USED_CHANNEL_FILTER}) AS last_channel_at,
               arg_max(channel, (occurred_at, channel)) FILTER (WHERE {USED_CHANNEL_FILTER}) AS last_channel
        FROM _daily_events GROUP BY ALL
    """


def _txn_aggregates_sql() -> str:
    parts = []
    for txn_type, (count_column, amount_column) in TXN_TYPE_AGGREGATES.items():
        parts.append(f"count(*) FILTER (WHERE txn_type = '{txn_type}') AS {count_column}")
        parts.append(
            f"coalesce(sum({exact_money('amount')}) FILTER (WHERE txn_type = '{txn_type}'), 0)::DOUBLE "
            f"AS {amount_column}"
        )
    return f"""
        SELECT user_id, {_utc_date("occurred_at")} AS activity_date,
               {", ".join(parts)},
               count(*) AS txns, min(occurred_at) AS first_txn_at, max(occurred_at) AS last_txn_at
        FROM _daily_transactions WHERE status = 'completed' GROUP BY ALL
    """


def user_daily(con: duckdb.DuckDBPyConnection, events: pa.Table, transactions: pa.Table) -> pa.Table:
    """Per user and UTC activity day, over one landing partition's actionable events and transactions.

    Columns exactly DAILY_COLUMNS, ordered by user_id, activity_date:

    | column | definition |
    |---|---|
    | user_id, activity_date | the user; the UTC date of occurred_at |
    | events | every accepted event of the user that day |
    | sessions | distinct non-NULL session_id among those events (a session crossing midnight counts on both days; summed across landing partitions, a session whose events landed on two days counts twice) |
    | page_views, screen_views, searches, feature_uses, impressions, clicks, conversions, unsubscribes | events of type page_view, screen_view, search, feature_use, impression, click, conversion, unsubscribe |
    | budget_tool_uses | feature_use events with properties.feature = 'budget_tool' |
    | deposits, deposit_amount | completed deposit transactions: count, sum of amount |
    | card_payments, card_amount | completed card_payment transactions: count, sum of amount |
    | transfers_in, transfer_in_amount / transfers_out, transfer_out_amount | likewise for transfer_in / transfer_out |
    | txns | completed transactions of any type |
    | first_txn_at, last_txn_at | earliest, latest completed transaction (NULL without one) |
    | last_seen_at | latest event of any type (NULL without one) |
    | last_channel_at, last_channel | latest event other than an impression with a channel, and its channel (the greatest channel name on a tie); NULL without one |

    Only `completed` transactions count. A user-day with neither an event nor a completed transaction
    has no row. Counts are BIGINT (0 when none), amounts DOUBLE (0.0 when none), times TIMESTAMPTZ.
    """  # noqa: E501
    schema = daily_schema()
    select = ", ".join(
        f"coalesce({c}, 0)::BIGINT AS {c}"
        if c in DAILY_COUNTS
        else f"coalesce({c}, 0)::DOUBLE AS {c}"
        if c in DAILY_AMOUNTS
        else c
        for c in DAILY_COLUMNS
    )
    con.register(
        "_daily_events", events.select(["user_id", "event_type", "occurred_at", "session_id", "channel", "properties"])
    )
    con.register("_daily_transactions", transactions.select(["user_id", "occurred_at", "amount", "txn_type", "status"]))
    try:
        return (
            con.sql(f"""
            SELECT {select}
            FROM ({_event_aggregates_sql()}) AS e
            FULL OUTER JOIN ({_txn_aggregates_sql()}) AS t USING (user_id, activity_date)
            ORDER BY user_id, activity_date
        """)
            .to_arrow_table()
            .cast(schema)
        )
    finally:
        con.unregister("_daily_events")
        con.unregister("_daily_transactions")


def touchpoint_daily_schema() -> pa.Schema:
    return pa.schema(
        [("user_id", pa.string()), ("activity_date", pa.date32()), ("touchpoint_id", pa.string())]
        + [(c, pa.int64()) for c in TOUCHPOINT_COUNTS]
    )


def user_touchpoint_daily(con: duckdb.DuckDBPyConnection, events: pa.Table) -> pa.Table:
    """Per user, UTC activity day and touchpoint, over one landing partition's actionable events: the
    TOUCHPOINT_COUNTS (events of type impression, click, conversion, unsubscribe) of events that name a
    touchpoint. A ratio or mean metric with a `touchpoint` reads these instead of user_daily (docs/statistics.md).
    No row without such an event; ordered by user_id, activity_date, touchpoint_id."""
    counts = ", ".join(
        f"count(*) FILTER (WHERE event_type = '{EVENT_TYPE_COUNTS[c]}')::BIGINT AS {c}" for c in TOUCHPOINT_COUNTS
    )
    types = ", ".join(f"'{EVENT_TYPE_COUNTS[c]}'" for c in TOUCHPOINT_COUNTS)
    con.register("_touchpoint_events", events.select(["user_id", "event_type", "occurred_at", "touchpoint_id"]))
    try:
        return (
            con.sql(f"""
            SELECT user_id, {_utc_date("occurred_at")} AS activity_date, touchpoint_id, {counts}
            FROM _touchpoint_events WHERE touchpoint_id IS NOT NULL AND event_type IN ({types})
            GROUP BY ALL ORDER BY user_id, activity_date, touchpoint_id
        """)
            .to_arrow_table()
            .cast(touchpoint_daily_schema())
        )
    finally:
        con.unregister("_touchpoint_events")


FIXED_FEATURES = ["user_id", "as_of", *PROFILE_FEATURES, *RECENCY_FEATURES]
AMOUNT_FEATURES = {
    "deposit_amount",
    "card_amount",
    "transfer_in_amount",
    "transfer_out_amount",
    "balance_in",
    "balance_out",
    *AVERAGE_AMOUNTS,
}


def features_schema(windows: list[int]) -> pa.Schema:
    types = {
        "user_id": pa.string(),
        "as_of": pa.date32(),
        "country": pa.string(),
        "plan": pa.string(),
        "age_band": pa.string(),
        "tenure_days": pa.int64(),
        "consent_personalization": pa.bool_(),
        "days_since_last_seen": pa.int64(),
        "first_txn_at": UTC,
        "last_txn_at": UTC,
        "last_channel": pa.string(),
        "history_days": pa.int64(),
        **{f"complete_{w}d": pa.bool_() for w in windows},
    }
    fields = []
    for name in feature_column_names(windows):
        base = name.rsplit("_", 1)[0] if name not in types else name
        fields.append((name, types.get(name, pa.float64() if base in AMOUNT_FEATURES else pa.int64())))
    return pa.schema(fields)


def _age_band_sql() -> str:
    age = "(year(CAST($as_of AS DATE)) - p.birth_year)"
    bands = " ".join(f"WHEN {age} BETWEEN {low} AND {high} THEN '{label}'" for low, high, label in AGE_BANDS)
    return f"CASE WHEN p.birth_year IS NULL THEN 'unknown' {bands} WHEN {age} >= 65 THEN '65+' ELSE 'unknown' END"


def _inside(window: int | None, largest: int, expression: str) -> str:
    """`expression` for rows inside the window, NULL outside (every row is inside the largest one and
    inside None, the covered part of the largest window)."""
    if window is None or window == largest:
        return expression
    return f"CASE WHEN activity_date > CAST($as_of AS DATE) - {window} THEN {expression} END"


def _suffix(window: int | None) -> str:
    return HISTORY if window is None else f"{window}d"


def _window_sums_sql(window: int | None, largest: int) -> str:
    """Sums over the daily rows of the window (None: every row given). Sums need no per-day merge first:
    adding the rows of several landing partitions per day, then the days, is adding the rows."""

    def total(expression: str, kind: str, name: str) -> str:
        if kind == "DOUBLE":
            expression = exact_money(expression)
        return f"coalesce(sum({_inside(window, largest, expression)}), 0)::{kind} AS {name}_{_suffix(window)}"

    parts = [total(name, "DOUBLE" if name in AMOUNT_FEATURES else "BIGINT", name) for name in WINDOWED_SUMS]
    parts += [
        total("deposit_amount + transfer_in_amount", "DOUBLE", "balance_in"),
        total("card_amount + transfer_out_amount", "DOUBLE", "balance_out"),
    ]
    parts += [
        f"(sum({_inside(window, largest, exact_money(amount))}) / nullif(sum({_inside(window, largest, count)}), 0))"
        f"::DOUBLE AS {name}_{_suffix(window)}"
        for name, (amount, count) in AVERAGE_AMOUNTS.items()
    ]
    return ",\n".join(parts)


def _window_days_sql(window: int | None, largest: int) -> str:
    """Distinct active / transaction days of the window, over rows already one per user and day."""
    return ",\n".join(
        f"count({_inside(window, largest, f'CASE WHEN {flag} THEN 1 END')})::BIGINT AS {name}_{_suffix(window)}"
        for flag, name in (("active", "active_days"), ("txn_day", "txn_days"))
    )


def user_features(
    con: duckdb.DuckDBPyConnection,
    daily: pa.Table | None,
    profiles: pa.Table,
    erased: pa.Table | None,
    as_of: date,
    windows: list[int],
    history_start: date | None = None,
) -> pa.Table:
    """One row per user of the `profiles` snapshot who is not in `erased`, as of `as_of`, ordered by
    user_id; columns exactly `feature_column_names(windows)`.

    `daily` is the union of user_daily partitions landed on or before as_of (None: no activity). Rows
    of the same user and activity_date are summed (counts, amounts) or min/max-ed (times); only
    activity dates from max(as_of - max(windows) + 1, history_start) to as_of are used ("the data
    given"). `history_start` is the first day of the lake's history (None: every window is covered).
    A window reaching before it is incomplete: its `<name>_<W>d` columns are NULL, not zero.

    | column | definition |
    |---|---|
    | user_id, as_of | the user; the as-of day |
    | country, plan, consent_personalization | from the profile snapshot (consent NULL = unknown) |
    | age_band | year(as_of) - birth_year: 18-24, 25-34, 35-44, 45-54, 55-64, 65+; 'unknown' without a birth_year or under 18 |
    | tenure_days | days from the UTC date of signup_at to as_of, never below 0 |
    | days_since_last_seen | days from the UTC date of the latest last_seen_at in the data given to as_of; NULL if not seen in it |
    | first_txn_at, last_txn_at | earliest, latest completed transaction in the data given |
    | last_channel | the channel of the latest event other than an impression in the data given (user_daily's last_channel at the greatest last_channel_at); NULL if none |
    | `<sum>_<W>d` for each name in WINDOWED_SUMS | sum of the daily column over activity dates as_of - W + 1 .. as_of (BIGINT counts, DOUBLE amounts, 0 without activity) |
    | active_days_<W>d | distinct activity dates in the window with at least one event |
    | txn_days_<W>d | distinct activity dates in the window with at least one completed transaction |
    | balance_in_<W>d | deposit_amount + transfer_in_amount over the window |
    | balance_out_<W>d | card_amount + transfer_out_amount over the window |
    | transfers_in_<W>d, transfer_in_amount_<W>d, transfers_out_<W>d, transfer_out_amount_<W>d | completed transfers in / out over the window: count, amount |
    | avg_deposit_amount_<W>d, avg_card_amount_<W>d, avg_transfer_in_amount_<W>d, avg_transfer_out_amount_<W>d | amount / count of that transaction type over the window; NULL without one |
    | history_days | as_of - history_start + 1 (NULL without a history_start), the same on every row |
    | complete_<W>d | history_days >= W (TRUE without a history_start); when FALSE every `<name>_<W>d` is NULL |
    | `<name>_history` for each windowed name | the same over the data given, i.e. the covered part of the largest window (never NULL but the averages): a lower bound of an incomplete window's sums |
    """  # noqa: E501
    schema = features_schema(windows)
    daily = daily if daily is not None else daily_schema().empty_table()
    erased = erased if erased is not None else pa.table({"user_id": pa.array([], pa.string())})
    con.register("_features_daily", daily.select(DAILY_COLUMNS))
    con.register(
        "_features_profiles",
        profiles.select(["user_id", "country", "plan", "birth_year", "signup_at", "consent_personalization"]),
    )
    con.register("_features_erased", erased.select(["user_id"]))
    largest, days = max(windows), history_days(as_of, history_start)
    computed = [w for w in windows if window_complete(w, days)] + [None]  # None: the covered part
    first = as_of - timedelta(days=largest - 1)
    first = first if history_start is None else max(first, history_start)
    try:
        return (
            con.sql(
                f"""
            WITH daily AS (
                SELECT * FROM _features_daily
                WHERE activity_date BETWEEN CAST($first AS DATE) AND CAST($as_of AS DATE)
            ), sums AS (
                SELECT user_id, min(first_txn_at) AS first_txn_at, max(last_txn_at) AS last_txn_at,
                       max(last_seen_at) AS last_seen_at,
                       arg_max(last_channel, (last_channel_at, last_channel)) AS last_channel,
                       {", ".join(_window_sums_sql(w, largest) for w in computed)}
                FROM daily GROUP BY user_id
            ), days AS (
                SELECT user_id, activity_date, bool_or(events > 0) AS active, bool_or(txns > 0) AS txn_day
                FROM daily GROUP BY user_id, activity_date
            ), day_counts AS (
                SELECT user_id, {", ".join(_window_days_sql(w, largest) for w in computed)}
                FROM days GROUP BY user_id
            )
            SELECT p.user_id, CAST($as_of AS DATE) AS as_of, p.country, p.plan,
                   {_age_band_sql()} AS age_band,
                   greatest(date_diff('day', {_utc_date("p.signup_at")}, CAST($as_of AS DATE)), 0)::BIGINT AS tenure_days,
                   p.consent_personalization,
                   date_diff('day', {_utc_date("s.last_seen_at")}, CAST($as_of AS DATE))::BIGINT AS days_since_last_seen,
                   s.first_txn_at, s.last_txn_at, s.last_channel,
                   {", ".join(_windowed_select(name, schema, windows, days) for name in schema.names[len(FIXED_FEATURES) :])}
            FROM _features_profiles AS p
            LEFT JOIN sums AS s USING (user_id)
            LEFT JOIN day_counts AS c USING (user_id)
            WHERE p.user_id NOT IN (SELECT user_id FROM _features_erased WHERE user_id IS NOT NULL)
            ORDER BY p.user_id
        """,  # noqa: E501
                params={"as_of": as_of, "first": first},
            )
            .to_arrow_table()
            .cast(schema)
        )
    finally:
        for name in ("_features_daily", "_features_profiles", "_features_erased"):
            con.unregister(name)


def _windowed_select(name: str, schema: pa.Schema, windows: list[int], days: int | None) -> str:
    """A windowed or coverage column: NULL in an incomplete window, else zero-filled."""
    if name == "history_days":
        return f"{'NULL' if days is None else days}::BIGINT AS history_days"
    window = name.rsplit("_", 1)[1]
    if name.startswith("complete_"):
        return f"{window_complete(int(window[:-1]), days)} AS {name}"
    if window != HISTORY and not window_complete(int(window[:-1]), days):
        return f"NULL AS {name}"  # not yet covered by history: unknown, not zero
    return _zero_filled(name, schema)


def _zero_filled(name: str, schema: pa.Schema) -> str:
    if name.rsplit("_", 1)[0] in AVERAGE_AMOUNTS:
        return name  # an average without a transaction is unknown, not 0
    zero = "0.0" if pa.types.is_floating(schema.field(name).type) else "0"
    return f"coalesce({name}, {zero}) AS {name}"
