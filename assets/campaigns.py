"""Contexts & campaigns: for each campaign, its audience, in treatment or holdout.

Arm assignment is a hash of campaign and user, so a user stays in the same arm across runs, days and
engines: `md5(campaign_id || ':' || user_id)`, its first 13 hex digits read as a fraction of 16^13.
A user whose bucket is below the campaign's holdout share is held out.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

HEX_DIGITS = 13  # 52 bits: exact in a double, so SQL and Python agree to the last digit


def arm_bucket_sql(campaign_expr: str, user_expr: str) -> str:
    """A DuckDB expression giving the user's bucket in [0, 1) for the campaign."""
    return (
        f"(('0x' || substr(md5({campaign_expr} || ':' || {user_expr}), 1, {HEX_DIGITS}))::UBIGINT"
        f" / {16 ** HEX_DIGITS}.0)"
    )


def holdout_mask(con: duckdb.DuckDBPyConnection, user_ids: pa.Array, campaign_id: str, holdout: float) -> pa.Array:
    """True where the user is held out of the campaign, in the order of `user_ids`."""
    users = pa.table({"user_id": user_ids})
    con.register("_arm_users", users)
    try:
        return con.sql(
            f"SELECT {arm_bucket_sql('?', 'user_id')} < ? AS held_out FROM _arm_users",  # insertion order is preserved
            params=[campaign_id, holdout],
        ).to_arrow_table().column("held_out").combine_chunks()
    finally:
        con.unregister("_arm_users")
