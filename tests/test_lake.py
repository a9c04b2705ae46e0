"""The one atomic writer (assets.lake.atomic_path): a reader sees the old file or the new one, never a part;
and DuckDB's resource settings from the environment (assets.lake.duckdb_settings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.lake import atomic_path, connect, duckdb_settings


def test_a_finished_block_replaces_the_file_and_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "sub" / "table.json"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.parent == target.parent  # unique names, same folder
        assert first.name.startswith(".table.json.") and first.name.endswith(".tmp")
        first.write_text("old")
        second.write_text("new")
    assert target.read_text() == "old"  # the outer block finished last
    assert [p.name for p in target.parent.iterdir()] == ["table.json"]


def test_a_failed_block_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path):
    target = tmp_path / "table.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]


def test_duckdb_memory_limit_threads_and_spill_folder_come_from_the_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PYRAMID_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("PYRAMID_DUCKDB_MEMORY_LIMIT", "512MB")
    monkeypatch.setenv("PYRAMID_DUCKDB_THREADS", "1")
    monkeypatch.delenv("PYRAMID_DUCKDB_TEMP_DIRECTORY", raising=False)
    con = connect(str(tmp_path / "x.duckdb"))
    settings = con.sql(
        "SELECT current_setting('memory_limit'), current_setting('threads'), current_setting('temp_directory'), "
        "current_setting('TimeZone')"
    ).fetchall()[0]
    assert settings == ("488.2 MiB", 1, str(tmp_path / "tmp" / "duckdb"), "UTC")  # 512 MB = 488.2 MiB
    monkeypatch.delenv("PYRAMID_DUCKDB_MEMORY_LIMIT")
    monkeypatch.delenv("PYRAMID_DUCKDB_THREADS")
    assert duckdb_settings() == {"temp_directory": str(tmp_path / "tmp" / "duckdb")}  # DuckDB's own defaults


def test_a_query_beyond_the_memory_limit_spills_into_a_folder_whose_parents_did_not_exist(tmp_path: Path, monkeypatch):
    spill = tmp_path / "fresh" / "tmp" / "duckdb"
    monkeypatch.setenv("PYRAMID_DUCKDB_TEMP_DIRECTORY", str(spill))
    monkeypatch.setenv("PYRAMID_DUCKDB_MEMORY_LIMIT", "64MB")
    monkeypatch.setenv("PYRAMID_DUCKDB_THREADS", "1")
    con = connect(str(tmp_path / "x.duckdb"))
    # a sort of about 250 MB of rows cannot stay within 64 MB: DuckDB must write to the spill folder
    checksum = con.sql(
        "SELECT sum(i * r) FROM (SELECT i, row_number() OVER (ORDER BY md5(i::VARCHAR)) AS r FROM range(3000000) t(i))"
    ).fetchall()[0][0]
    n = 3_000_000
    assert checksum > 0 and checksum < n * n * n  # computed at all (a spill failure raises instead)
    assert spill.is_dir()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PYRAMID_DUCKDB_THREADS", "two", "PYRAMID_DUCKDB_THREADS must be a whole number"),
        ("PYRAMID_DUCKDB_THREADS", "0", "PYRAMID_DUCKDB_THREADS must be a whole number"),
        (
            "PYRAMID_DUCKDB_MEMORY_LIMIT",
            "lots",
            "PYRAMID_DUCKDB_MEMORY_LIMIT='lots' is not a valid DuckDB memory_limit",
        ),
    ],
)
def test_a_bad_duckdb_setting_is_named(tmp_path: Path, monkeypatch, variable: str, value: str, message: str):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=message):
        connect(str(tmp_path / "x.duckdb"))


def test_partitions_written_before_a_column_was_added_read_it_as_null(tmp_path: Path):
    from datetime import date

    import pyarrow as pa
    import pyarrow.parquet as pq

    from assets.lake import Lake, read_partitions

    lake = Lake(tmp_path)
    old, new = date(2026, 10, 1), date(2026, 10, 2)
    for day, table in (
        (old, pa.table({"user_id": ["u1"], "events": [1]})),
        (new, pa.table({"user_id": ["u2"], "events": [2], "last_channel": ["web"]})),
    ):
        path = lake.partition_file("actionable", "user_daily", day)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
    rows = read_partitions(connect(), lake, "actionable", "user_daily", [old, new], "user_id, events, last_channel")
    assert sorted(rows.to_pylist(), key=lambda r: r["user_id"]) == [
        {"user_id": "u1", "events": 1, "last_channel": None},
        {"user_id": "u2", "events": 2, "last_channel": "web"},
    ]
