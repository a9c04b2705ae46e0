"""User segments: who is in each segment as of a day, how big and stable each segment is, how they overlap.

Segment rules are SQL written in the map. They were checked when the map was loaded; they are checked
again here (defence in depth) and evaluated on a dedicated in-memory DuckDB connection that cannot
read or write files, load extensions, or change its own configuration. Only eligible users
(known, non-erased, with personalization consent) are ever members.

Stability against the previous as-of day (docs/contracts.md, `segment_summary`):
`entered` = members now and not before, `exited` = members before and not now, `jaccard` =
|now ∩ before| / |now ∪ before|. On the first as-of day (no previous membership) `previous_size`,
`entered`, `exited` and `jaccard` are NULL; when both snapshots of a segment are empty, `jaccard` is
NULL (0/0).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb
import polars as pl
import pyarrow as pa

from assets.pyramid_map import SegmentDefinition
from assets.sql_guard import require_safe

MEMBERSHIP_SCHEMA = pa.schema([
    ("as_of", pa.date32()),
    ("segment_id", pa.string()),
    ("kind", pa.string()),
    ("user_id", pa.string()),
    ("score", pa.float64()),
])
SUMMARY_SCHEMA = pa.schema([
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
])
OVERLAP_SCHEMA = pa.schema([
    ("as_of", pa.date32()),
    ("segment_a", pa.string()),
    ("segment_b", pa.string()),
    ("both", pa.int64()),
    ("jaccard", pa.float64()),
])

_SANDBOX_SETTINGS = (
    "SET TimeZone = 'UTC'",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET enable_external_access = false",
    "SET lock_configuration = true",  # last: nothing after it can undo the settings above
)


def sandboxed_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for map expressions: no file system, no extensions, settings locked.

    Arrow tables can still be registered on it (`con.register`); that is all it reads.
    """
    con = duckdb.connect(":memory:")
    for setting in _SANDBOX_SETTINGS:
        con.execute(setting)
    return con


def segment_membership(features: pa.Table, definitions: Sequence[SegmentDefinition], as_of: date) -> pa.Table:
    """One row per segment and eligible user satisfying the segment's rule, sorted by segment, user.

    A rule that evaluates to NULL for a user (a NULL feature) does not make the user a member.
    """
    allowed_columns = set(features.column_names)
    selects = []
    for definition in definitions:
        rule = require_safe(definition.rule, allowed_columns, where=f"segment {definition.id!r}")
        selects.append(
            f"SELECT DISTINCT {_sql_string(definition.id)} AS segment_id, {_sql_string(definition.kind)} AS kind,"
            f" CAST(user_id AS VARCHAR) AS user_id FROM _features"
            f" WHERE consent_personalization IS TRUE AND ({rule})"
        )
    if not selects:
        return MEMBERSHIP_SCHEMA.empty_table()
    con = sandboxed_connection()
    try:
        con.register("_features", features)
        members = con.sql(
            f"SELECT ?::DATE AS as_of, segment_id, kind, user_id, NULL::DOUBLE AS score"
            f" FROM ({' UNION ALL '.join(selects)}) ORDER BY segment_id, user_id",
            params=[as_of],
        ).to_arrow_table()
    finally:
        con.close()
    return members.cast(MEMBERSHIP_SCHEMA)


def segment_summary(
    membership: pa.Table,
    previous: pa.Table | None,
    eligible_users: int,
    definitions: Sequence[SegmentDefinition],
    as_of: date,
) -> pa.Table:
    """Size, share, usability and stability of every defined segment, members or not."""
    current = _members(membership)
    sizes = _definitions_frame(definitions).join(_sizes(current, "size"), on="segment_id", how="left")
    if previous is None:
        stability = [pl.lit(None, pl.Int64).alias(name) for name in ("previous_size", "entered", "exited")]
        summary = sizes.with_columns(*stability, pl.lit(None, pl.Int64).alias("both"))
    else:
        before = _members(previous)
        both = current.join(before, on=["segment_id", "user_id"], how="inner")
        summary = (
            sizes.join(_sizes(before, "previous_size"), on="segment_id", how="left")
            .join(_sizes(both, "both"), on="segment_id", how="left")
            .with_columns(pl.col("size", "previous_size", "both").fill_null(0))
            .with_columns(
                entered=pl.col("size") - pl.col("both"),
                exited=pl.col("previous_size") - pl.col("both"),
            )
        )
    summary = summary.with_columns(pl.col("size").fill_null(0)).with_columns(
        as_of=pl.lit(as_of, pl.Date),
        eligible_users=pl.lit(eligible_users, pl.Int64),
        share=_ratio(pl.col("size"), pl.lit(eligible_users, pl.Int64)),
        usable=pl.col("size") >= pl.col("min_size"),
        jaccard=_ratio(pl.col("both"), pl.col("size") + pl.col("previous_size") - pl.col("both")),
    )
    return _to_arrow(summary.sort("segment_id"), SUMMARY_SCHEMA)


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
            jaccard=_ratio(pl.col("both"), pl.col("size_a") + pl.col("size_b") - pl.col("both")),
        )
        .sort("segment_a", "segment_b")
    )
    return _to_arrow(overlap, OVERLAP_SCHEMA)


def _members(membership: pa.Table) -> pl.DataFrame:
    columns = membership.select(["segment_id", "user_id"])
    return pl.from_arrow(columns).cast({"segment_id": pl.String, "user_id": pl.String}).unique()


def _sizes(members: pl.DataFrame, name: str) -> pl.DataFrame:
    return members.group_by("segment_id").agg(pl.len().cast(pl.Int64).alias(name))


def _definitions_frame(definitions: Sequence[SegmentDefinition]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "segment_id": [d.id for d in definitions],
            "kind": [d.kind for d in definitions],
            "min_size": [d.min_size for d in definitions],
        },
        schema={"segment_id": pl.String, "kind": pl.String, "min_size": pl.Int64},
    )


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator / denominator, NULL where the denominator is 0 or NULL."""
    return pl.when(denominator > 0).then(numerator / denominator).otherwise(None)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    return frame.select(schema.names).to_arrow().cast(schema)
