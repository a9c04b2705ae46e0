"""Where the pyramid's tables live, and how they are written and read.

Layout (docs/contracts.md): `<root>/lake/<layer>/<table>/ds=<day>/part-0.parquet`, one file per
partition. Every write goes to a temporary name in the same folder and is renamed into place, so a
reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from assets.user_index import bloom_options

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT_ENV = "PYRAMID_DATA_ROOT"


def default_data_root() -> Path:
    """`$PYRAMID_DATA_ROOT`, or `data/` in the folder the command runs in."""
    return Path(os.environ.get(DATA_ROOT_ENV, Path.cwd() / "data")).resolve()


@dataclass(frozen=True)
class Lake:
    """The data root: landing files, the lake, reports and the analyst catalog."""

    root: Path

    @classmethod
    def default(cls) -> Lake:
        return cls(default_data_root())

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def table_dir(self, layer: str, table: str) -> Path:
        return self.root / "lake" / layer / table

    def partition_file(self, layer: str, table: str, ds: date | str) -> Path:
        return self.table_dir(layer, table) / f"ds={_iso(ds)}" / "part-0.parquet"

    def glob(self, layer: str, table: str) -> str:
        """A read_parquet glob over every partition of a table (hive-style `ds=` folders)."""
        return str(self.table_dir(layer, table) / "*" / "*.parquet")

    def partitions(self, layer: str, table: str) -> list[date]:
        """The days for which a table has a written partition, in order."""
        folder = self.table_dir(layer, table)
        if not folder.exists():
            return []
        days = [
            date.fromisoformat(p.name.removeprefix("ds="))
            for p in folder.glob("ds=*")
            if (p / "part-0.parquet").exists()
        ]
        return sorted(days)

    def has_partition(self, layer: str, table: str, ds: date | str) -> bool:
        return self.partition_file(layer, table, ds).exists()


def _iso(ds: date | str) -> str:
    return ds if isinstance(ds, str) else ds.isoformat()


_WORKSPACE: duckdb.DuckDBPyConnection | None = None
MEMORY_LIMIT_ENV = "PYRAMID_DUCKDB_MEMORY_LIMIT"
THREADS_ENV = "PYRAMID_DUCKDB_THREADS"
TEMP_DIRECTORY_ENV = "PYRAMID_DUCKDB_TEMP_DIRECTORY"


def duckdb_settings() -> dict[str, str]:
    """DuckDB's resource settings from the environment: `memory_limit` (e.g. `3GB`; DuckDB's default is
    80% of RAM), `threads` (default: one per core) and `temp_directory`, where DuckDB spills what does
    not fit in the limit (default: `<data root>/tmp/duckdb`, so that spilling stays on the data disk)."""
    settings = {"temp_directory": os.environ.get(TEMP_DIRECTORY_ENV) or str(default_data_root() / "tmp" / "duckdb")}
    if limit := os.environ.get(MEMORY_LIMIT_ENV, "").strip():
        settings["memory_limit"] = limit
    if threads := os.environ.get(THREADS_ENV, "").strip():
        if not threads.isdigit() or int(threads) < 1:
            raise ValueError(f"{THREADS_ENV} must be a whole number of threads (1 or more), got {threads!r}")
        settings["threads"] = threads
    return settings


def _configure(con: duckdb.DuckDBPyConnection, scope: str) -> None:
    """UTC, no replacement scans, and the resource settings of `duckdb_settings` (a bad value is named)."""
    con.execute(f"SET {scope} TimeZone = 'UTC'; SET {scope} python_enable_replacements = false")
    for name, value in duckdb_settings().items():
        try:
            con.execute(f"SET {scope} {name} = ?", [value])
        except duckdb.Error as err:
            variable = {"memory_limit": MEMORY_LIMIT_ENV, "threads": THREADS_ENV}.get(name, TEMP_DIRECTORY_ENV)
            raise ValueError(f"{variable}={value!r} is not a valid DuckDB {name}: {err}") from None


def connect(database: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection in UTC, so that time-zone-aware values never shift, with the memory limit,
    threads and spill folder of `duckdb_settings`.

    In-memory connections are cursors on one process-wide workspace database: opening a database
    costs tens of milliseconds, a cursor almost nothing, and each cursor keeps its own registered
    tables. A file database gets a connection of its own. SQL never finds a Python variable by its
    name (DuckDB's replacement scans are off): every relation a statement reads is registered on the
    connection, so a reader sees where each table name comes from."""
    global _WORKSPACE
    if database != ":memory:":
        con = duckdb.connect(database, read_only=read_only)
        _configure(con, "")
        return con
    if _WORKSPACE is None:
        workspace = duckdb.connect(":memory:")
        _configure(workspace, "GLOBAL")
        _WORKSPACE = workspace
    return _WORKSPACE.cursor()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """The one atomic writer: yields a unique temporary name beside `path` (`.<name>.<uuid>.tmp`) to
    write to; renames it onto `path` when the block succeeds and removes it when the block fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(table: pa.Table, path: Path) -> int:
    """Write an Arrow table to `path` via a temporary file and a rename, with the index erasure reads
    (assets/user_index.py) when it has user ids. Returns the row count."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", bloom_filter_options=bloom_options(table))
    return table.num_rows


def write_text_atomic(text: str, path: Path) -> Path:
    """Write a text file (UTF-8) to `path` via a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def read_partition(con: duckdb.DuckDBPyConnection, path: Path) -> pa.Table:
    return con.sql("SELECT * FROM read_parquet(?)", params=[str(path)]).to_arrow_table()


def read_partitions(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    layer: str,
    table: str,
    days: list[date],
    columns: str = "*",
) -> pa.Table | None:
    """Read the given days of a table (those that exist); None when none of them exists."""
    files = [str(lake.partition_file(layer, table, d)) for d in days if lake.has_partition(layer, table, d)]
    if not files:
        return None
    # by name: a partition written before a column was added reads it as NULL
    return con.sql(f"SELECT {columns} FROM read_parquet(?, union_by_name = true)", params=[files]).to_arrow_table()
