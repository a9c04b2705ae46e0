"""Where the pyramid's tables live, and how they are written and read.

Layout (docs/contracts.md): `<root>/lake/<layer>/<table>/ds=<day>/part-0.parquet`, one file per
partition. Every write goes to a temporary name in the same folder and is renamed into place, so a
reader sees the old file or the new one, never half of one.

The root may be an object-store URL (`s3://bucket/prefix`, docs/scaling.md). Its paths are then
`upath.UPath`s over an fsspec filesystem, which is also registered on every DuckDB connection; a write
is staged in a local file and uploaded as one object (S3 has no atomic rename, but an object appears
whole or not at all). Local roots stay plain `pathlib.Path`s and never import fsspec.
"""

from __future__ import annotations

import glob
import os
import tempfile
import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from assets.user_index import bloom_options

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem
    from upath import UPath

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_ROOT_ENV = "PYRAMID_DATA_ROOT"
LOCAL_ROOT_ENV = "PYRAMID_LOCAL_ROOT"
OBJECT_STORES = ("s3",)  # URL schemes a data root may have (tested on a local S3, tests/test_object_store.py)


def default_data_root() -> Path | UPath:
    """`$PYRAMID_DATA_ROOT`, or `data/` in the folder the command runs in."""
    return as_data_root(os.environ.get(DATA_ROOT_ENV, Path.cwd() / "data"))


def as_data_root(root: str | os.PathLike) -> Path | UPath:
    """A local folder (resolved), or a `UPath` for an object-store URL such as `s3://bucket/prefix`."""
    text = str(root)
    if "://" not in text:
        return Path(text).resolve()
    scheme = text.split("://", 1)[0]
    if scheme not in OBJECT_STORES:
        raise ValueError(f"data root {text!r}: not supported yet: {scheme}:// (object stores: s3://)")
    from upath import UPath

    return UPath(text.rstrip("/"))


def is_local(path: Path | UPath) -> bool:
    return isinstance(path, Path)


def glob_files(root: Path | UPath, pattern: str) -> list[Path | UPath]:
    """The paths under `root` that a glob pattern matches, in name order (`glob.glob`'s on a local root)."""
    if is_local(root):
        return [Path(p) for p in sorted(glob.glob(os.path.join(root, pattern)))]
    found = root.fs.glob(f"{root.path}/{pattern}")
    return [type(root)(f"{root.protocol}://{p}", **root.storage_options) for p in sorted(found)]


def readable(path: Path | UPath) -> Path | pa.NativeFile:
    """What pyarrow's readers take: a local path as it is, an object-store file opened for reading (ranged
    requests: a Parquet footer costs no whole download)."""
    return path if is_local(path) else pa.PythonFile(path.open("rb"), mode="r")


def local_folder(root: Path | UPath) -> Path:
    """Where a data root's machine-local parts go (the analyst catalog, DuckDB's spill folder, `pyramid`'s locks
    and logs): the root itself, or `local_root()` for an object store."""
    return root if is_local(root) else local_root()


def local_root() -> Path:
    """Where the parts of an object-store root that must be local go (the analyst catalog, DuckDB's spill
    folder): `$PYRAMID_LOCAL_ROOT`, or `data/` in the folder the command runs in."""
    return Path(os.environ.get(LOCAL_ROOT_ENV, Path.cwd() / "data")).resolve()


@dataclass(frozen=True)
class Lake:
    """The data root: landing files, the lake, reports and the analyst catalog."""

    root: Path | UPath

    def __post_init__(self) -> None:
        if not is_local(self.root):
            use_filesystem(self.root.fs)

    @classmethod
    def default(cls) -> Lake:
        return cls(default_data_root())

    @property
    def landing(self) -> Path | UPath:
        return self.root / "landing"

    @property
    def reports(self) -> Path | UPath:
        return self.root / "reports"

    @property
    def scratch(self) -> Path | UPath:
        """Per-user Parquet parts one step of a run hands to the next, `<step>/ds=<day>/<part>/<name>.parquet`:
        removed once read, so none is left after a finished run (pipelines/layers/goal_buckets.py)."""
        return self.root / "scratch"

    def scratch_files(self) -> list[Path | UPath]:
        """Every scratch part under the data root: a failed run's, or a running one's."""
        return glob_files(self.scratch, "*/ds=*/*/*.parquet")

    @property
    def warehouse(self) -> Path:
        """The analyst catalog; a DuckDB file cannot live on an object store: then it is local."""
        return local_folder(self.root) / "warehouse.duckdb"

    def table_dir(self, layer: str, table: str) -> Path | UPath:
        return self.root / "lake" / layer / table

    def partition_file(self, layer: str, table: str, ds: date | str) -> Path | UPath:
        return self.table_dir(layer, table) / f"ds={_iso(ds)}" / "part-0.parquet"

    def glob(self, layer: str, table: str) -> str:
        """A read_parquet glob over every partition of a table (hive-style `ds=` folders)."""
        return str(self.table_dir(layer, table) / "*" / "*.parquet")

    def partitions(self, layer: str, table: str) -> list[date]:
        """The days for which a table has a written partition, in order."""
        folder = self.table_dir(layer, table)
        if not is_local(folder):
            return _listed_days(folder)
        if not folder.exists():
            return []
        days = [
            date.fromisoformat(p.name.removeprefix("ds="))
            for p in folder.glob("ds=*")
            if (p / "part-0.parquet").exists()
        ]
        return sorted(days)

    def has_partition(self, layer: str, table: str, ds: date | str) -> bool:
        if not is_local(self.root):  # one listing: a missing object costs S3 a HEAD and a LIST
            return date.fromisoformat(_iso(ds)) in self.partitions(layer, table)
        return self.partition_file(layer, table, ds).exists()


def _listed_days(folder: UPath) -> list[date]:
    """The days with a `ds=<day>/part-0.parquet` under an object-store folder, from one (paged) listing."""
    days = []
    for key in folder.fs.find(folder.path):
        parent, _, name = key.removeprefix(f"{folder.path}/").rpartition("/")
        if name == "part-0.parquet" and parent.startswith("ds=") and "/" not in parent:
            days.append(date.fromisoformat(parent.removeprefix("ds=")))
    return sorted(days)


def _iso(ds: date | str) -> str:
    return ds if isinstance(ds, str) else ds.isoformat()


_WORKSPACE: duckdb.DuckDBPyConnection | None = None
_FILESYSTEMS: list[AbstractFileSystem] = []  # registered on every DuckDB connection (a data root's object store)
_STORES: list[AbstractFileSystem] = []  # the data roots' own filesystems (their listings are cached until forgotten)
MEMORY_LIMIT_ENV = "PYRAMID_DUCKDB_MEMORY_LIMIT"
THREADS_ENV = "PYRAMID_DUCKDB_THREADS"
TEMP_DIRECTORY_ENV = "PYRAMID_DUCKDB_TEMP_DIRECTORY"


def duckdb_settings() -> dict[str, str]:
    """DuckDB's resource settings from the environment: `memory_limit` (e.g. `3GB`; DuckDB's default is
    80% of RAM), `threads` (default: one per core) and `temp_directory`, where DuckDB spills what does
    not fit in the limit (default: `<data root>/tmp/duckdb`, so that spilling stays on the data disk)."""
    spill = local_folder(default_data_root()) / "tmp" / "duckdb"
    settings = {"temp_directory": os.environ.get(TEMP_DIRECTORY_ENV) or str(spill)}
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
        if name == "temp_directory":  # DuckDB creates the spill folder itself, but not its parents
            Path(value).parent.mkdir(parents=True, exist_ok=True)
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
    _forget_details()
    if database != ":memory:":
        con = duckdb.connect(database, read_only=read_only)
        _configure(con, "")
        _register_filesystems(con)
        return con
    if _WORKSPACE is None:
        workspace = duckdb.connect(":memory:")
        _configure(workspace, "GLOBAL")
        # jemalloc's background threads hand freed pages back to the system: without them a step's freed memory
        # stayed in the process until later allocations purged it, and the next steps' peaks started from it
        workspace.execute("SET allocator_background_threads = true")
        _register_filesystems(workspace)
        _WORKSPACE = workspace
    return _WORKSPACE.cursor()


def use_filesystem(fs: AbstractFileSystem) -> None:
    """Make an fsspec filesystem (an object-store root's) readable by every DuckDB connection of the process:
    DuckDB's httpfs extension cannot be installed offline, so `s3://` paths go through fsspec."""
    if any(known.protocol == fs.protocol for known in _FILESYSTEMS):
        return
    _STORES.append(fs)
    _FILESYSTEMS.append(_remembering(fs))
    if _WORKSPACE is not None:
        _register_filesystems(_WORKSPACE)


def _remembering(fs: AbstractFileSystem) -> AbstractFileSystem:
    """`fs` for DuckDB, remembering each object's details (size, time) until the next `connect()` or lake write:
    DuckDB asks for them up to eight times per file it reads, and each question is a request to the store.
    Objects are only replaced whole (`atomic_path`), and a step reads what finished steps wrote: a step starts
    with `connect()`, so nothing it remembers predates it (the root's listings are forgotten at the same time)."""

    class Remembering(type(fs)):
        known: dict[str, dict] = {}

        async def _info(self, path: str, *args: object, **kwargs: object) -> dict:
            key = self._strip_protocol(path)
            if key not in self.known:
                info = await super()._info(path, *args, **kwargs)
                if info.get("type") != "file":
                    return info
                self.known[key] = info
            return self.known[key]

        async def _find(self, path: str, maxdepth: int | None = None, **kwargs: object) -> object:
            found = await super()._find(path, **kwargs)  # one paged listing: with a depth, s3fs lists each folder
            if maxdepth is None:
                return found
            deepest = self._strip_protocol(path).rstrip("/").count("/") + maxdepth
            if isinstance(found, dict):
                return {name: info for name, info in found.items() if name.count("/") <= deepest}
            return [name for name in found if name.count("/") <= deepest]

    return Remembering(**fs.storage_options)


def _forget_details() -> None:
    """Forget what the object store's listings and details said (at each `connect()` and after each write)."""
    for fs in _FILESYSTEMS:
        fs.known.clear()
    for fs in _STORES + _FILESYSTEMS:
        fs.invalidate_cache()


def _register_filesystems(con: duckdb.DuckDBPyConnection) -> None:
    registered = set(con.list_filesystems())
    for fs in _FILESYSTEMS:
        if not registered.intersection(_protocols(fs)):
            con.register_filesystem(fs)


def _protocols(fs: AbstractFileSystem) -> set[str]:
    return {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)


@contextmanager
def atomic_path(path: Path | UPath) -> Iterator[Path]:
    """The one atomic writer: yields a unique temporary name beside `path` (`.<name>.<uuid>.tmp`) to
    write to; renames it onto `path` when the block succeeds and removes it when the block fails.
    On an object store the temporary file is local and the block's success uploads it as one object."""
    if not is_local(path):
        with tempfile.TemporaryDirectory(prefix="pyramid-upload-") as folder:
            staged = Path(folder) / path.name
            yield staged
            path.fs.put_file(str(staged), path.path)
            _forget_details()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(table: pa.Table, path: Path | UPath) -> int:
    """Write an Arrow table to `path` via a temporary file and a rename, with the index erasure reads
    (assets/user_index.py) when it has user ids. Returns the row count."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", bloom_filter_options=bloom_options(table))
    return table.num_rows


def write_text_atomic(text: str, path: Path | UPath) -> Path | UPath:
    """Write a text file (UTF-8) to `path` via a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def read_partition(
    con: duckdb.DuckDBPyConnection, path: Path | UPath, columns: Collection[str] | None = None
) -> pa.Table:
    """One partition file (its hive `ds` column included); with `columns`, only those of its columns, in its order
    (a name it lacks is left out), read from the file alone."""
    partition = con.sql("SELECT * FROM read_parquet(?)", params=[str(path)])
    return (partition if columns is None else partition.select(*projected(partition.columns, columns))).to_arrow_table()


def projected(names: Sequence[str], columns: Collection[str]) -> list[str]:
    """The `names` that are among `columns`, in their order, quoted for a select list."""
    wanted = set(columns)
    return ['"' + name.replace('"', '""') + '"' for name in names if name in wanted]


def partition_files(lake: Lake, layer: str, table: str, days: list[date]) -> list[str]:
    """The partition files of `days` a table has (on an object store one listing, not a request per day)."""
    if is_local(lake.root):
        present = [d for d in days if lake.has_partition(layer, table, d)]
    else:
        written = set(lake.partitions(layer, table))
        present = [d for d in days if d in written]
    return [str(lake.partition_file(layer, table, d)) for d in present]


def read_partitions(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    layer: str,
    table: str,
    days: list[date],
    columns: str = "*",
) -> pa.Table | None:
    """Read the given days of a table (those that exist); None when none of them exists."""
    files = partition_files(lake, layer, table, days)
    if not files:
        return None
    # by name: a partition written before a column was added reads it as NULL
    return con.sql(f"SELECT {columns} FROM read_parquet(?, union_by_name = true)", params=[files]).to_arrow_table()
