"""The Dagster instance of a `pyramid run`: DAGSTER_HOME's, with its SQLite event log keeping its connections open.

Dagster's SQLite event log opens a new engine and connection for every statement (about eight per event,
270 events per day), and each close of the last connection checkpoints the WAL: about 5 s of CPU per day of
bookkeeping. The pooled storage below writes the same files, in the same schema, through one open engine
per shard; with `synchronous=NORMAL` (safe in WAL mode: a power loss may lose the last events, never corrupt
the file) a commit no longer waits for the disk. The UI and `pyramid status` read the files as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

OPEN_SHARDS = 4  # the index shard and the latest runs' shards; older ones are closed


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, with one pooled engine per shard instead of one engine per statement."""

    _engines: dict[str, Engine]
    _engines_lock: threading.Lock

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    @classmethod
    def pool(cls, storage: SqliteEventLogStorage) -> None:
        """Turn Dagster's own storage object into this class in place: same files, same state."""
        storage.__class__ = cls
        storage._engines, storage._engines_lock = {}, threading.Lock()  # type: ignore[attr-defined]

    def has_table(self, table_name: str) -> bool:
        engine = self._engine(INDEX_SHARD_NAME)  # called inside `_connect` too: not under `_db_lock`
        with engine.connect() as conn:
            return bool(engine.dialect.has_table(conn, table_name))

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            return self._open_engine(shard)

    def _open_engine(self, shard: str) -> Engine:
        engines = self._engines
        if shard not in engines:
            while len(engines) >= OPEN_SHARDS:
                engines.pop(next(iter(engines))).dispose()
            engine = create_engine(
                self.conn_string_for_shard(shard), connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
            )
            event.listen(engine, "connect", _no_fsync_per_commit)
            engines[shard] = engine
        else:
            engines[shard] = engines.pop(shard)  # most recently used last
        return engines[shard]

    def dispose(self) -> None:
        with self._engines_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()
        super().dispose()


def _no_fsync_per_commit(dbapi_connection: object, _record: object) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")  # type: ignore[attr-defined]


def run_instance() -> dg.DagsterInstance:
    """DAGSTER_HOME's instance; its event log pooled when it is Dagster's default SQLite one (same files)."""
    instance = dg.DagsterInstance.get()
    if type(instance.event_log_storage) is SqliteEventLogStorage:
        PooledSqliteEventLogStorage.pool(instance.event_log_storage)
    return instance
