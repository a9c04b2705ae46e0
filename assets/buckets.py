"""User buckets: per-user work of a day split by a stable hash of the user id (docs/scaling.md, "Buckets").

A user's bucket is `md5('bucket:' || user_id)`, its first 13 hex digits read as a whole number, modulo the
bucket count: the same in DuckDB and in Python, on every version of either (DuckDB's own `hash` is not stable
across versions), and independent of the campaigns' arms (`assets.campaigns`, md5 of campaign and user).

The count is how the pipeline is run, not part of the program: `$PYRAMID_BUCKETS` (default 1), never the map.
A bucket's rows are read with `Bucket.where` in the scan's WHERE, or split from a table in memory (`split`); what
is computed per bucket and how the buckets' figures are combined lives with each step (`assets.goal_day`,
`assets.north_star`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from assets.lake import connect

BUCKETS_ENV = "PYRAMID_BUCKETS"
HEX_DIGITS = 13  # 52 bits, as for the arms: exact in a double and in a UBIGINT
SALT = "bucket:"


def bucket_count(value: str | int | None = None) -> int:
    """The bucket count: `value` when given (a resource's setting), else `$PYRAMID_BUCKETS`, else 1."""
    raw = os.environ.get(BUCKETS_ENV, "") if value is None or value == "" else value
    text = str(raw).strip()
    if not text:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{BUCKETS_ENV} must be a whole number of buckets (1 or more), got {text!r}")
    return int(text)


def bucket_sql(user_expr: str, buckets: int) -> str:
    """A DuckDB expression giving the bucket (0 .. buckets - 1) of the user id `user_expr`."""
    return f"(('0x' || substr(md5('{SALT}' || coalesce({user_expr}, '')), 1, {HEX_DIGITS}))::UBIGINT % {int(buckets)})"


def bucket_of(user_id: str, buckets: int) -> int:
    """The same bucket as `bucket_sql`, for one user in Python (tests, debugging)."""
    return int(hashlib.md5(f"{SALT}{user_id}".encode()).hexdigest()[:HEX_DIGITS], 16) % buckets


def user_buckets(user_ids: pa.Array | pa.ChunkedArray, buckets: int) -> pa.Array:
    """The bucket of each user id, in order (int64)."""
    con = connect()
    try:
        con.register("_bucket_users", pa.table({"user_id": user_ids}))
        sql = f"SELECT {bucket_sql('user_id', buckets)}::BIGINT AS bucket FROM _bucket_users"  # keeps the order
        return con.sql(sql).to_arrow_table().column("bucket").combine_chunks()
    finally:
        con.close()


def split(table: pa.Table | None, buckets: int) -> list[pa.Table | None]:
    """`table` split by its `user_id` into `buckets` tables (row order kept within each); the table itself
    when there is one bucket, None for every bucket when it is None."""
    if table is None or buckets == 1:
        return [table] * buckets
    of_row = user_buckets(table.column("user_id"), buckets)
    return [table.filter(pc.equal(of_row, b)) for b in range(buckets)]


@dataclass(frozen=True)
class Bucket:
    """Bucket `index` of `count`: the users whose `bucket_sql` is `index` (with one bucket, every user)."""

    index: int
    count: int

    def where(self, user_expr: str = "user_id") -> str:
        """A DuckDB condition keeping this bucket's rows; TRUE with one bucket."""
        return "TRUE" if self.count == 1 else f"{bucket_sql(user_expr, self.count)} = {int(self.index)}"

    def rows_of(self, table: pa.Table | None) -> pa.Table | None:
        """This bucket's rows of `table` (by its `user_id`, order kept); the table itself with one bucket."""
        if table is None or self.count == 1:
            return table
        return table.filter(pc.equal(user_buckets(table.column("user_id"), self.count), self.index))
