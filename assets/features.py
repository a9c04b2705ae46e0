"""Actionable layer, per user: the feature table as of a date, from the map's declared `features` over the
user_daily rows of its `measures` (assets/measures.py), and the per-touchpoint daily counts.

The map is the contract (docs/contracts.md): segment rules may use only feature columns, goal metrics only
the summable measures; the map is checked against its own declarations before a run.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from assets.measures import daily_columns, daily_schema, exact_money, measure_type, utc_date

if TYPE_CHECKING:  # pragma: no cover - typing only
    from assets.pyramid_map import PyramidMap

HISTORY = "history"  # suffix of the columns over the covered part of the largest window
# The counts of events that carry a touchpoint_id, per user, day and touchpoint (`user_touchpoint_daily`): fixed by
# the contract (the touchpoint event types), not declared.
TOUCHPOINT_COUNTS = {
    "impressions": "impression",
    "clicks": "click",
    "conversions": "conversion",
    "unsubscribes": "unsubscribe",
}
PROFILE_COLUMNS = ["user_id", "country", "plan", "birth_year", "signup_at", "consent_personalization"]


def feature_column_names(pyramid_map: PyramidMap, windows: list[int]) -> list[str]:
    """Every column of the user_features table the map declares for the given windows, in table order."""
    declared = pyramid_map.features
    names = declared.windowed_names
    windowed = [f"{name}_{w}d" for w in windows for name in names]
    coverage = ["history_days", *(f"complete_{w}d" for w in windows), *(f"{name}_{HISTORY}" for name in names)]
    return ["user_id", "as_of", *declared.profile, *declared.latest, *windowed, *coverage]


def day_counters(pyramid_map: PyramidMap, windows: list[int]) -> tuple[list[str], list[str]]:
    """user_features' columns a day moves without storing them (assets/snapshots.py): those counting the days (each
    `days_since` feature, tenure_days) and those holding one value a day (history_days, complete_<W>d)."""
    declared = pyramid_map.features
    counting = [name for name, spec in declared.latest.items() if spec.kind == "days_since"]
    counting += [name for name in declared.profile if name == "tenure_days"]
    return counting, ["history_days", *(f"complete_{w}d" for w in windows)]


def monotone_windowed(pyramid_map: PyramidMap) -> set[str]:
    """The windowed features that grow with the window (counts, days and sums of positive amounts): the same
    sums over the part of a window that history covers are lower bounds of the whole window's (docs/segments.md).
    """
    declared = pyramid_map.features
    return {*declared.windowed_sums, *(name for name, spec in declared.windowed.items() if spec.monotone)}


def history_days(as_of: date, history_start: date | None) -> int | None:
    """Days of history up to as_of, the first day of the lake included (None: history start unknown)."""
    return None if history_start is None else max((as_of - history_start).days + 1, 0)


def window_complete(window: int, days: int | None) -> bool:
    """A window of `window` days ending at as_of is complete when history covers every day of it."""
    return days is None or days >= window


# --- transforms ------------------------------------------------------------------------------------

AGE_BANDS = [(18, 24, "18-24"), (25, 34, "25-34"), (35, 44, "35-44"), (45, 54, "45-54"), (55, 64, "55-64")]


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
        f"count(*) FILTER (WHERE event_type = '{t}')::BIGINT AS {c}" for c, t in TOUCHPOINT_COUNTS.items()
    )
    types = ", ".join(f"'{t}'" for t in TOUCHPOINT_COUNTS.values())
    con.register("_touchpoint_events", events.select(["user_id", "event_type", "occurred_at", "touchpoint_id"]))
    try:
        return (
            con.sql(f"""
            SELECT user_id, {utc_date("occurred_at")} AS activity_date, touchpoint_id, {counts}
            FROM _touchpoint_events WHERE touchpoint_id IS NOT NULL AND event_type IN ({types})
            GROUP BY ALL ORDER BY user_id, activity_date, touchpoint_id
        """)
            .to_arrow_table()
            .cast(touchpoint_daily_schema())
        )
    finally:
        con.unregister("_touchpoint_events")


def _windowed_type(pyramid_map: PyramidMap, name: str) -> pa.DataType:
    """A windowed feature's type: counts and days BIGINT, sums of amounts and averages DOUBLE."""
    measures, spec = pyramid_map.measures, pyramid_map.features.windowed.get(name)
    if spec is None:
        return measure_type(measures[name])
    if spec.kind == "days_with":
        return pa.int64()
    if spec.kind == "average" or any(measures[m].agg == "sum" for m in spec.sum_of):
        return pa.float64()
    return pa.int64()


_PROFILE_TYPES = {
    "country": pa.string(),
    "plan": pa.string(),
    "age_band": pa.string(),
    "tenure_days": pa.int64(),
    "consent_personalization": pa.bool_(),
}


def features_schema(pyramid_map: PyramidMap, windows: list[int]) -> pa.Schema:
    """user_features' Arrow schema: `feature_column_names` with each column's type."""
    declared, measures = pyramid_map.features, pyramid_map.measures
    types = {"user_id": pa.string(), "as_of": pa.date32(), "history_days": pa.int64()}
    types |= {name: _PROFILE_TYPES[name] for name in declared.profile}
    types |= {
        name: pa.int64() if spec.kind == "days_since" else measure_type(measures[spec.measure])
        for name, spec in declared.latest.items()
    }
    types |= {f"complete_{w}d": pa.bool_() for w in windows}
    for name in declared.windowed_names:
        types |= {f"{name}_{_suffix(w)}": _windowed_type(pyramid_map, name) for w in [*windows, None]}
    return pa.schema([(name, types[name]) for name in feature_column_names(pyramid_map, windows)])


def _age_band_sql() -> str:
    age = "(year(CAST($as_of AS DATE)) - p.birth_year)"
    bands = " ".join(f"WHEN {age} BETWEEN {low} AND {high} THEN '{label}'" for low, high, label in AGE_BANDS)
    return f"CASE WHEN p.birth_year IS NULL THEN 'unknown' {bands} WHEN {age} >= 65 THEN '65+' ELSE 'unknown' END"


def _profile_sql(name: str) -> str:
    if name == "age_band":
        return f"{_age_band_sql()} AS age_band"
    if name == "tenure_days":
        return f"greatest(date_diff('day', {utc_date('p.signup_at')}, CAST($as_of AS DATE)), 0)::BIGINT AS tenure_days"
    return f"p.{name}"


def _latest_sql(pyramid_map: PyramidMap, name: str) -> str:
    """A latest feature's aggregate over the daily rows (a days_since: the measure's latest value)."""
    spec = pyramid_map.features.latest[name]
    measure = pyramid_map.measures[spec.measure]
    if spec.kind == "first" or (spec.kind == "days_since" and measure.agg == "min"):
        value = f"min({measure.name})"
    elif measure.agg == "last":
        value = f"arg_max({measure.name}, ({measure.name}_at, {measure.name}))"
    else:
        value = f"max({measure.name})"
    return f"{value} AS {_latest_alias(pyramid_map, name)}"


def _latest_alias(pyramid_map: PyramidMap, name: str) -> str:
    return f"_since_{name}" if pyramid_map.features.latest[name].kind == "days_since" else name


def _latest_select(pyramid_map: PyramidMap, name: str) -> str:
    if pyramid_map.features.latest[name].kind == "days_since":
        return f"date_diff('day', {utc_date(f's._since_{name}')}, CAST($as_of AS DATE))::BIGINT AS {name}"
    return f"s.{name}"


def _inside(window: int | None, largest: int, expression: str) -> str:
    """`expression` for rows inside the window, NULL outside (every row is inside the largest one and
    inside None, the covered part of the largest window)."""
    if window is None or window == largest:
        return expression
    return f"CASE WHEN activity_date > CAST($as_of AS DATE) - {window} THEN {expression} END"


def _suffix(window: int | None) -> str:
    return HISTORY if window is None else f"{window}d"


def _window_sums_sql(pyramid_map: PyramidMap, window: int | None, largest: int) -> str:
    """Sums over the daily rows of the window (None: every row given). Sums need no per-day merge first:
    adding the rows of several landing partitions per day, then the days, is adding the rows."""

    def total(expression: str, name: str) -> str:
        exact = pa.types.is_floating(_windowed_type(pyramid_map, name))
        expression = exact_money(expression) if exact else expression
        kind = "DOUBLE" if exact else "BIGINT"
        return f"coalesce(sum({_inside(window, largest, expression)}), 0)::{kind} AS {name}_{_suffix(window)}"

    declared = pyramid_map.features
    parts = [total(name, name) for name in declared.windowed_sums]
    for name, spec in declared.windowed.items():
        if spec.kind == "sum_of":
            parts.append(total(" + ".join(spec.sum_of), name))
        elif spec.kind == "average":
            amount, count = exact_money(spec.average), spec.per
            parts.append(
                f"(sum({_inside(window, largest, amount)}) / nullif(sum({_inside(window, largest, count)}), 0))"
                f"::DOUBLE AS {name}_{_suffix(window)}"
            )
    return ",\n".join(parts)


def _days_with(pyramid_map: PyramidMap) -> dict[str, str]:
    """days_with feature -> its measure."""
    return {name: s.days_with for name, s in pyramid_map.features.windowed.items() if s.kind == "days_with"}


def _window_days_sql(days_with: dict[str, str], window: int | None, largest: int) -> str:
    """Distinct days of the window with the measure above 0, over rows already one per user and day."""
    return ",\n".join(
        f"count({_inside(window, largest, f'CASE WHEN _day_{name} THEN 1 END')})::BIGINT AS {name}_{_suffix(window)}"
        for name in days_with
    )


def _days_ctes(days_with: dict[str, str], computed: list[int | None], largest: int) -> str:
    """`, days AS (...), day_counts AS (...)` when the map declares days_with features."""
    if not days_with:
        return ""
    flags = ", ".join(f"bool_or({measure} > 0) AS _day_{name}" for name, measure in days_with.items())
    return f""", days AS (
                SELECT user_id, activity_date, {flags} FROM daily GROUP BY user_id, activity_date
            ), day_counts AS (
                SELECT user_id, {", ".join(_window_days_sql(days_with, w, largest) for w in computed)}
                FROM days GROUP BY user_id
            )"""


def user_features(
    con: duckdb.DuckDBPyConnection,
    pyramid_map: PyramidMap,
    daily: pa.Table | None,
    profiles: pa.Table,
    erased: pa.Table | None,
    as_of: date,
    windows: list[int],
    history_start: date | None = None,
) -> pa.Table:
    """One row per user of the `profiles` snapshot who is not in `erased`, as of `as_of`, ordered by
    user_id; columns exactly `feature_column_names(pyramid_map, windows)` (the map's `features`).

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
    | latest `days_since: m` | days from the UTC date of m's latest value in the data given to as_of (its least for a min measure); NULL if none |
    | latest `first: m` / `last: m` | m's least / greatest value in the data given (of a `last` measure: the value at the greatest `m_at`, the greatest value on a tie) |
    | `<m>_<W>d` for each m of windowed_sums | sum of the daily column over activity dates as_of - W + 1 .. as_of (BIGINT counts, DOUBLE sums, 0 without activity) |
    | `days_with: m` | distinct activity dates in the window with m > 0 |
    | `sum_of: [a, b]` | a + b summed over the window |
    | `average: a, per: b` | a / b over the window; NULL when b sums to 0 |
    | history_days | as_of - history_start + 1 (NULL without a history_start), the same on every row |
    | complete_<W>d | history_days >= W (TRUE without a history_start); when FALSE every `<name>_<W>d` is NULL |
    | `<name>_history` for each windowed name | the same over the data given, i.e. the covered part of the largest window (never NULL but the averages): a lower bound of an incomplete window's sums |
    """  # noqa: E501
    schema = features_schema(pyramid_map, windows)
    measures = pyramid_map.measures
    daily = daily if daily is not None else daily_schema(measures).empty_table()
    erased = erased if erased is not None else pa.table({"user_id": pa.array([], pa.string())})
    con.register("_features_daily", daily.select(daily_columns(measures)))
    con.register("_features_profiles", profiles.select(PROFILE_COLUMNS))
    con.register("_features_erased", erased.select(["user_id"]))
    try:
        table = con.sql(
            _features_sql(pyramid_map, schema, as_of, windows, history_start),
            params=_params(as_of, windows, history_start),
        ).to_arrow_table()
        return _typed(table, schema)
    finally:
        for name in ("_features_daily", "_features_profiles", "_features_erased"):
            con.unregister(name)


def _typed(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table.cast(schema)`, its untyped NULL columns (the windows history does not cover yet) sharing one NULL array
    per type and chunk: at 1M users 78 such columns, cast one by one, took 600 MB."""
    nulls: dict[pa.DataType, pa.ChunkedArray] = {}
    columns = []
    for field, column in zip(schema, table.columns, strict=True):
        if pa.types.is_null(column.type):
            if field.type not in nulls:
                nulls[field.type] = pa.chunked_array([pa.nulls(len(c), field.type) for c in column.chunks], field.type)
            column = nulls[field.type]
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names).cast(schema)


def _params(as_of: date, windows: list[int], history_start: date | None) -> dict[str, date]:
    first = as_of - timedelta(days=max(windows) - 1)
    return {"as_of": as_of, "first": first if history_start is None else max(first, history_start)}


def _features_sql(
    pyramid_map: PyramidMap, schema: pa.Schema, as_of: date, windows: list[int], history_start: date | None
) -> str:
    declared = pyramid_map.features
    largest, days = max(windows), history_days(as_of, history_start)
    computed = [w for w in windows if window_complete(w, days)] + [None]  # None: the covered part
    days_with = _days_with(pyramid_map)
    fixed = 2 + len(declared.profile) + len(declared.latest)
    latest = [_latest_sql(pyramid_map, name) for name in declared.latest]
    windowed = [_windowed_select(pyramid_map, name, schema, days) for name in schema.names[fixed:]]
    selects = [
        "p.user_id",
        "CAST($as_of AS DATE) AS as_of",
        *(_profile_sql(name) for name in declared.profile),
        *(_latest_select(pyramid_map, name) for name in declared.latest),
        *windowed,
    ]
    return f"""
            WITH daily AS (
                SELECT * FROM _features_daily
                WHERE activity_date BETWEEN CAST($first AS DATE) AND CAST($as_of AS DATE)
            ), sums AS (
                SELECT user_id, {", ".join([*latest, *(_window_sums_sql(pyramid_map, w, largest) for w in computed)])}
                FROM daily GROUP BY user_id
            ){_days_ctes(days_with, computed, largest)}
            SELECT {", ".join(selects)}
            FROM _features_profiles AS p
            LEFT JOIN sums AS s USING (user_id)
            {"LEFT JOIN day_counts AS c USING (user_id)" if days_with else ""}
            WHERE p.user_id NOT IN (SELECT user_id FROM _features_erased WHERE user_id IS NOT NULL)
            ORDER BY p.user_id
        """


def _windowed_select(pyramid_map: PyramidMap, name: str, schema: pa.Schema, days: int | None) -> str:
    """A windowed or coverage column: NULL in an incomplete window, else zero-filled."""
    if name == "history_days":
        return f"{'NULL' if days is None else days}::BIGINT AS history_days"
    window = name.rsplit("_", 1)[1]
    if name.startswith("complete_"):
        return f"{window_complete(int(window[:-1]), days)} AS {name}"
    if window != HISTORY and not window_complete(int(window[:-1]), days):
        return f"NULL AS {name}"  # not yet covered by history: unknown, not zero
    spec = pyramid_map.features.windowed.get(name.rsplit("_", 1)[0])
    if spec is not None and spec.kind == "average":
        return name  # an average without a transaction is unknown, not 0
    zero = "0.0" if pa.types.is_floating(schema.field(name).type) else "0"
    return f"coalesce({name}, {zero}) AS {name}"
