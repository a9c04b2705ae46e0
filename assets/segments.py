"""User segments: who is in each segment as of a day, how big and stable each segment is, how they overlap.

Segment rules are SQL written in the map. They were checked when the map was loaded; they are checked
again here (defence in depth) and evaluated on a dedicated in-memory DuckDB connection that cannot
read or write files, load extensions, or change its own configuration. Only eligible users
(known, non-erased, with personalization consent) are ever members.

Stability against the previous as-of day (docs/contracts.md, `segment_summary`):
`entered` = members now and not before, `exited` = members before and not now, `jaccard` =
|now ∩ before| / |now ∪ before|. On the first as-of day (no previous membership) `previous_size`,
`entered`, `exited` and `jaccard` are NULL; when both snapshots of a segment are empty, `jaccard` is
NULL (0/0). `churn_share` = (entered + exited) / previous_size (NULL when previous_size is NULL or 0).
`median_days_in_segment`: the median over current members of the consecutive as-of days they have
been in the segment, today included (as_of - since + 1), where membership carries `since`: the first
as-of day of the member's current unbroken run, taken from the previous membership (incremental: one
previous partition is read, never the history).

Before and after hysteresis (assets/stability.py): `raw_size`, `raw_entered`, `raw_exited`, `raw_jaccard`
and `raw_churn_share` are the same figures for the raw membership, today's scoring before any hold
(`raw_scored_membership`), against the day before's raw membership. A segment that no hysteresis
touches (every rule segment) has raw figures equal to its stabilized ones.

Scored segments (method `rfm` or `lifecycle`, docs/segments.md) are computed here too, in the same
sandbox; their definitions come from the map's `segments.scored`.

Start of history (`assets.coverage`): a rule reads an incomplete window's monotone sums on their covered
part (a lower bound) and is NULL, hence selects nobody, elsewhere; RFM scores the covered part of its
window; a lifecycle stage is not assigned to a user never seen while history is shorter than the
dormant window. `segment_summary.window_complete` says whether history covers every window a segment
reads.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import date

import polars as pl
import pyarrow as pa

from assets.coverage import lower_bound_rule, segment_windows, windows_complete
from assets.features import HISTORY
from assets.pyramid_map import SegmentDefinition
from assets.rfm import rfm_group
from assets.sql_guard import expression_columns, require_safe, sandboxed_connection
from assets.stability import stabilize
from assets.statistics import ratio

MEMBERSHIP_SCHEMA = pa.schema(
    [
        ("as_of", pa.date32()),
        ("segment_id", pa.string()),
        ("kind", pa.string()),
        ("user_id", pa.string()),
        ("score", pa.float64()),
        ("since", pa.date32()),
    ]
)
SUMMARY_SCHEMA = pa.schema(
    [
        ("as_of", pa.date32()),
        ("segment_id", pa.string()),
        ("kind", pa.string()),
        ("size", pa.int64()),
        ("eligible_users", pa.int64()),
        ("share", pa.float64()),
        ("min_size", pa.int64()),
        ("usable", pa.bool_()),
        ("previous_size", pa.int64()),
        ("entered", pa.int64()),
        ("exited", pa.int64()),
        ("jaccard", pa.float64()),
        ("method", pa.string()),
        ("churn_share", pa.float64()),
        ("median_days_in_segment", pa.float64()),
        ("history_days", pa.int64()),
        ("window_complete", pa.bool_()),
        ("raw_size", pa.int64()),
        ("raw_entered", pa.int64()),
        ("raw_exited", pa.int64()),
        ("raw_jaccard", pa.float64()),
        ("raw_churn_share", pa.float64()),
    ]
)
STABILITY_COLUMNS = ("previous_size", "entered", "exited", "jaccard", "churn_share")
OVERLAP_SCHEMA = pa.schema(
    [
        ("as_of", pa.date32()),
        ("segment_a", pa.string()),
        ("segment_b", pa.string()),
        ("both", pa.int64()),
        ("jaccard", pa.float64()),
    ]
)


ELIGIBILITY_COLUMNS = ("user_id", "consent_personalization")  # who is eligible: all `segment_baselines` reads
_WINDOWED = re.compile(r"^(?P<name>[a-z_]+)_\d+d$")


def feature_columns(definitions: Sequence[SegmentDefinition]) -> set[str]:
    """The user_features columns `segment_membership` reads for `definitions`: each rule's columns (a scored
    segment's `inputs`) and their covered parts (`<name>_history`), the eligibility, as_of and history_days."""
    read = {c for d in definitions for c in (expression_columns(d.rule) if d.method == "rule" else d.inputs)}
    covered = {f"{m['name']}_{HISTORY}" for c in read if (m := _WINDOWED.match(c))}
    return {*ELIGIBILITY_COLUMNS, "as_of", "history_days", *read, *covered}


def _quintile_sql(expression: str) -> str:
    """1..5 from the cumulative share of scored users at or below `expression` (ascending, higher =
    better): ceil(5 * cume_dist()). Tied users share the highest position of their tie, hence the same
    quintile whatever the row order; the best tie reaches 5 even when it is large (most users
    transacted today, so recency ties are the rule), which a lowest-rank rule would deny."""
    return f"greatest(ceil(5 * cume_dist() OVER (ORDER BY {expression})), 1)::INTEGER"


def _covered(name: str, window: int, columns: set[str]) -> str:
    """The window's column, or its covered part while the window is incomplete (NULL)."""
    column = f"{name}_{window}d"
    return f"coalesce({column}, {name}_{HISTORY})" if f"{name}_{HISTORY}" in columns else column


def _rfm_sql(definitions: Sequence[SegmentDefinition], columns: set[str]) -> str | None:
    wanted = [d for d in definitions if d.method == "rfm"]
    if not wanted:
        return None
    scoring = wanted[0].scoring
    window = scoring.window_days
    txns = _covered(scoring.frequency, window, columns)
    monetary = " + ".join(_covered(name, window, columns) for name in scoring.monetary)
    return f"""
        WITH base AS (
            SELECT user_id,
                   date_diff('day', CAST(timezone('UTC', {scoring.recency}) AS DATE), CAST(as_of AS DATE)) AS recency,
                   {txns} AS frequency,
                   {monetary} AS monetary
            FROM _features WHERE consent_personalization IS TRUE AND {txns} > 0
        ), scored AS (
            SELECT user_id, {_quintile_sql("recency DESC")} AS r, {_quintile_sql("frequency")} AS f,
                   {_quintile_sql("monetary")} AS m
            FROM base
        )
        SELECT w.segment_id, w.kind, CAST(s.user_id AS VARCHAR) AS user_id, (100 * s.r + 10 * s.f + s.m)::DOUBLE AS score
        FROM scored s JOIN _rfm_grid g USING (r, f)
        JOIN (VALUES {_group_values(wanted)}) AS w(grp, segment_id, kind) ON w.grp = g.grp"""  # noqa: E501


def _lifecycle_sql(definitions: Sequence[SegmentDefinition], columns: set[str]) -> str | None:
    wanted = [d for d in definitions if d.method == "lifecycle"]
    if not wanted:
        return None
    c = wanted[0].scoring
    history = "history_days" if "history_days" in columns else "NULL::BIGINT"
    return f"""
        WITH base AS (
            SELECT user_id, tenure_days, {history} AS history_days,
                   least(days_since_last_seen,
                         date_diff('day', CAST(timezone('UTC', last_txn_at) AS DATE), CAST(as_of AS DATE))) AS recency
            FROM _features WHERE consent_personalization IS TRUE
        ), staged AS (
            SELECT user_id, recency, CASE
                WHEN tenure_days < {c.new_days} THEN 'new'
                WHEN recency IS NULL AND history_days < {c.dormant_days} THEN NULL  -- unknown: not assigned
                WHEN recency < {c.active_days} THEN 'active'
                WHEN recency < {c.at_risk_days} THEN 'at_risk'
                WHEN recency < {c.dormant_days} THEN 'dormant'
                ELSE 'churned' END AS stage
            FROM base
        )
        SELECT w.segment_id, w.kind, CAST(s.user_id AS VARCHAR) AS user_id, s.recency::DOUBLE AS score
        FROM staged s JOIN (VALUES {_group_values(wanted)}) AS w(stage, segment_id, kind) ON w.stage = s.stage"""


def _group_values(wanted: Sequence[SegmentDefinition]) -> str:
    """VALUES rows (group, segment_id, kind) of scored segment definitions."""
    return ", ".join(f"({_sql_string(d.group)}, {_sql_string(d.id)}, {_sql_string(d.kind)})" for d in wanted)


def segment_membership(
    features: pa.Table,
    definitions: Sequence[SegmentDefinition],
    as_of: date,
    previous: pa.Table | None = None,
    *,
    monotone: Collection[str],
) -> pa.Table:
    """One row per segment and eligible user in it, sorted by segment, user (MEMBERSHIP_SCHEMA).

    Rule segments: a rule that evaluates to NULL for a user (a NULL feature) does not make the user a
    member, except that monotone atoms read an incomplete window on its lower bound (`assets.coverage`);
    `score` is NULL. RFM groups: `score` = 100 R + 10 F + M. Lifecycle stages: `score` = days
    since the last activity (NULL: none in the largest window). `since` continues the member's run
    from `previous` (the membership of the day before; None on the first day), else is `as_of`.
    `monotone`: the windowed features read on their lower bound (`features.monotone_windowed`).
    """
    allowed_columns = set(features.column_names)
    selects = []
    for definition in definitions:
        if definition.method != "rule":
            continue
        rule = require_safe(definition.rule, allowed_columns, where=f"segment {definition.id!r}")
        rule = lower_bound_rule(rule, allowed_columns, monotone)
        selects.append(
            f"SELECT DISTINCT {_sql_string(definition.id)} AS segment_id, {_sql_string(definition.kind)} AS kind,"
            f" CAST(user_id AS VARCHAR) AS user_id, NULL::DOUBLE AS score FROM _features"
            f" WHERE consent_personalization IS TRUE AND ({rule})"
        )
    selects += [
        sql for sql in (_rfm_sql(definitions, allowed_columns), _lifecycle_sql(definitions, allowed_columns)) if sql
    ]
    if not selects:
        return MEMBERSHIP_SCHEMA.empty_table()
    con = sandboxed_connection()
    try:
        con.register("_features", features)
        con.register(
            "_rfm_grid",
            pa.table(
                {
                    "r": [r for r in range(1, 6) for _ in range(1, 6)],
                    "f": [f for _ in range(1, 6) for f in range(1, 6)],
                    "grp": [rfm_group(r, f) for r in range(1, 6) for f in range(1, 6)],
                }
            ),
        )
        con.register("_previous", _previous_runs(previous))
        members = con.sql(
            f"SELECT ?::DATE AS as_of, m.segment_id, m.kind, m.user_id, m.score,"
            f" coalesce(p.since, ?::DATE) AS since"
            f" FROM ({' UNION ALL '.join(f'({sql})' for sql in selects)}) AS m"
            f" LEFT JOIN _previous AS p USING (segment_id, user_id)"
            f" ORDER BY m.segment_id, m.user_id",
            params=[as_of, as_of],
        ).to_arrow_table()
    finally:
        con.close()
    return stabilize(members.cast(MEMBERSHIP_SCHEMA), previous, features, definitions, as_of)


def _previous_runs(previous: pa.Table | None) -> pa.Table:
    """(segment_id, user_id, since) of the previous membership; a partition written before `since`
    existed starts every run at its own as_of."""
    schema = pa.schema([("segment_id", pa.string()), ("user_id", pa.string()), ("since", pa.date32())])
    if previous is None or previous.num_rows == 0:
        return schema.empty_table()
    since = previous.column("since" if "since" in previous.column_names else "as_of")
    return pa.table(
        {"segment_id": previous.column("segment_id"), "user_id": previous.column("user_id"), "since": since}
    ).cast(schema)


def raw_scored_membership(features: pa.Table, definitions: Sequence[SegmentDefinition], as_of: date) -> pa.Table:
    """Today's scored segments (RFM groups, lifecycle stages) as scored, before any hysteresis."""
    return segment_membership(features, [d for d in definitions if d.method != "rule"], as_of, monotone=())


def segment_summary(
    membership: pa.Table,
    previous: pa.Table | None,
    eligible_users: int,
    definitions: Sequence[SegmentDefinition],
    as_of: date,
    *,
    history_days: int | None = None,
    raw: tuple[pa.Table, pa.Table | None] | None = None,
) -> pa.Table:
    """Size, share, usability and stability of every defined segment, members or not; `window_complete`:
    history (`history_days` days; None: unknown, taken as covering) covers every window the segment reads.

    `raw`: today's and the day before's `raw_scored_membership`, for the raw_* (before hysteresis)
    columns; without it (or for a segment it does not score) the raw figures are the stabilized ones.
    """
    ids = [d.id for d in definitions]
    current, before = _members(membership), None if previous is None else _members(previous)
    summary = (
        _definitions_frame(definitions, history_days)
        .join(_median_days(membership, as_of), on="segment_id", how="left")
        .join(_stability(ids, current, before), on="segment_id", how="left")
    )
    if raw is not None:
        scored = [d.id for d in definitions if d.method != "rule"]
        current = pl.concat([current.filter(~pl.col("segment_id").is_in(scored)), _members(raw[0])])
        if before is not None and raw[1] is not None:
            before = pl.concat([before.filter(~pl.col("segment_id").is_in(scored)), _members(raw[1])])
    raw_stability = _stability(ids, current, before)
    summary = summary.join(
        raw_stability.select("segment_id", pl.all().exclude("segment_id").name.prefix("raw_")), on="segment_id"
    ).with_columns(
        as_of=pl.lit(as_of, pl.Date),
        eligible_users=pl.lit(eligible_users, pl.Int64),
        share=ratio(pl.col("size"), pl.lit(eligible_users, pl.Int64)),
        usable=pl.col("size") >= pl.col("min_size"),
    )
    return _to_arrow(summary.sort("segment_id"), SUMMARY_SCHEMA)


def _stability(ids: Sequence[str], current: pl.DataFrame, before: pl.DataFrame | None) -> pl.DataFrame:
    """Per segment id: size and STABILITY_COLUMNS (NULL without a day before)."""
    frame = pl.DataFrame({"segment_id": list(ids)}, schema={"segment_id": pl.String}).join(
        _sizes(current, "size"), on="segment_id", how="left"
    )
    if before is None:
        return frame.with_columns(
            pl.col("size").fill_null(0), *(pl.lit(None, pl.Int64).alias(c) for c in STABILITY_COLUMNS)
        )
    both = current.join(before, on=["segment_id", "user_id"], how="inner")
    return (
        frame.join(_sizes(before, "previous_size"), on="segment_id", how="left")
        .join(_sizes(both, "both"), on="segment_id", how="left")
        .with_columns(pl.col("size", "previous_size", "both").fill_null(0))
        .with_columns(entered=pl.col("size") - pl.col("both"), exited=pl.col("previous_size") - pl.col("both"))
        .with_columns(
            jaccard=ratio(pl.col("both"), pl.col("size") + pl.col("previous_size") - pl.col("both")),
            churn_share=ratio(pl.col("entered") + pl.col("exited"), pl.col("previous_size")),
        )
        .select("segment_id", "size", *STABILITY_COLUMNS)
    )


def churning_segments(summary: pa.Table, max_churn_share: float, column: str = "churn_share") -> list[str]:
    """Segments usable the day before (previous size >= min_size) whose `column` (churn_share, or
    raw_churn_share: before hysteresis) exceeds the share. Churn against a group too small to target says
    little, and the segments_usable check already reports it."""
    previous = "previous_size" if column == "churn_share" else "raw_previous_size"
    rows = pl.from_arrow(summary).with_columns(raw_previous_size=_raw_previous_size())
    return [
        r["segment_id"]
        for r in rows.iter_rows(named=True)
        if r[column] is not None and r[previous] >= r["min_size"] and r[column] > max_churn_share
    ]


def churn_metadata(summary: pa.Table) -> dict[str, float]:
    """Per scored segment: churn_share after and before hysteresis (aggregates only; NULLs left out)."""
    metadata = {}
    for r in summary.to_pylist():
        if r["method"] == "rule":
            continue
        for column in ("raw_churn_share", "churn_share", "raw_jaccard", "jaccard"):
            if r[column] is not None:
                metadata[f"{column}/{r['segment_id']}"] = float(r[column])
    return metadata


def _raw_previous_size() -> pl.Expr:
    """The raw membership's previous size: raw_size - raw_entered + raw_exited."""
    return pl.col("raw_size") - pl.col("raw_entered") + pl.col("raw_exited")


def _median_days(membership: pa.Table, as_of: date) -> pl.DataFrame:
    """Per segment: the median of as_of - since + 1 over its members (NULL without a `since` column)."""
    schema = {"segment_id": pl.String, "median_days_in_segment": pl.Float64}
    if "since" not in membership.column_names or membership.num_rows == 0:
        return pl.DataFrame(schema=schema)
    return (
        pl.from_arrow(membership.select(["segment_id", "user_id", "since"]))
        .unique(["segment_id", "user_id"])
        .group_by("segment_id")
        .agg(median_days_in_segment=((pl.lit(as_of, pl.Date) - pl.col("since")).dt.total_days() + 1).median())
        .cast(schema)
    )


def segment_overlap(membership: pa.Table, as_of: date) -> pa.Table:
    """For every pair of segments with members (segment_a < segment_b): users in both, and Jaccard."""
    members = _members(membership)
    sizes = _sizes(members, "size")
    pairs = (
        sizes.rename({"segment_id": "segment_a", "size": "size_a"})
        .join(sizes.rename({"segment_id": "segment_b", "size": "size_b"}), how="cross")
        .filter(pl.col("segment_a") < pl.col("segment_b"))
    )
    shared = (
        members.rename({"segment_id": "segment_a"})
        .join(members.rename({"segment_id": "segment_b"}), on="user_id", how="inner")
        .filter(pl.col("segment_a") < pl.col("segment_b"))
        .group_by("segment_a", "segment_b")
        .agg(both=pl.len().cast(pl.Int64))
    )
    overlap = (
        pairs.join(shared, on=["segment_a", "segment_b"], how="left")
        .with_columns(pl.col("both").fill_null(0))
        .with_columns(
            as_of=pl.lit(as_of, pl.Date),
            jaccard=ratio(pl.col("both"), pl.col("size_a") + pl.col("size_b") - pl.col("both")),
        )
        .sort("segment_a", "segment_b")
    )
    return _to_arrow(overlap, OVERLAP_SCHEMA)


def _members(membership: pa.Table) -> pl.DataFrame:
    columns = membership.select(["segment_id", "user_id"])
    return pl.from_arrow(columns).cast({"segment_id": pl.String, "user_id": pl.String}).unique()


def _sizes(members: pl.DataFrame, name: str) -> pl.DataFrame:
    return members.group_by("segment_id").agg(pl.len().cast(pl.Int64).alias(name))


def _definitions_frame(definitions: Sequence[SegmentDefinition], history_days: int | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "segment_id": [d.id for d in definitions],
            "kind": [d.kind for d in definitions],
            "min_size": [d.min_size for d in definitions],
            "method": [d.method for d in definitions],
            "history_days": [history_days] * len(definitions),
            "window_complete": [windows_complete(segment_windows(d), history_days) for d in definitions],
        },
        schema={
            "segment_id": pl.String,
            "kind": pl.String,
            "min_size": pl.Int64,
            "method": pl.String,
            "history_days": pl.Int64,
            "window_complete": pl.Boolean,
        },
    )


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    return frame.select(schema.names).to_arrow().cast(schema)
