"""The PII scan (issue 9): after the session's run (tests/pyramid_run.py, on an on-disk Dagster
instance), every e-mail, phone and name of the landing profiles is searched as an exact value in every
file of the data root outside `lake/raw` and `landing` (the lake above raw, the catalog, the reports)
and in every file of the Dagster instance's storage. None is found. No erased user's id is found
outside raw, landing and the erasure records, and no user id at all in Dagster's storage.

Each file is searched as bytes, plus what compression or page layout could hide: the text of every
string column of a Parquet file, and a dump of every SQLite database (a long value spills over pages).
Each value is searched as written and as JSON and HTML escape it; one Aho-Corasick pass per text
(Polars' `str.contains_any`)."""

from __future__ import annotations

import html
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

ERASURE_RECORDS = (("lake", "actionable", "erased_users"),)  # raw/erasure_requests is under lake/raw


def _forms(value: str) -> set[str]:
    """The value as bytes would hold it: plain, JSON-escaped (once and twice) and HTML-escaped;
    each as Latin-1 text of its UTF-8 bytes, so that a text search is an exact byte search."""
    once = json.dumps(value)[1:-1]
    forms = {value, once, json.dumps(once)[1:-1], html.escape(value)}
    return {f.encode("utf-8").decode("latin-1") for f in forms}


def _needles(values: Iterable[str]) -> dict[str, str]:
    """Each searchable form -> the value it stands for."""
    return {form: value for value in values if value for form in _forms(value)}


def _texts(path: Path) -> Iterator[str]:
    data = path.read_bytes()
    yield data.decode("latin-1")
    if data[:4] == b"PAR1":
        yield _parquet_text(path).encode("utf-8").decode("latin-1")
    elif data[:16] == b"SQLite format 3\x00":
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            yield "\n".join(con.iterdump()).encode("utf-8").decode("latin-1")


def _parquet_text(path: Path) -> str:
    """Every string value of the file (lists of strings flattened), one per line."""
    table = pq.read_table(path)
    parts = []
    for column in table.columns:
        kind = column.type
        while pa.types.is_list(kind) or pa.types.is_large_list(kind):
            column, kind = pa.chunked_array([c.flatten() for c in column.chunks], kind.value_type), kind.value_type
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
            parts.append("\n".join(v for v in column.cast(pa.string()).to_pylist() if v is not None))
    return "\n".join(parts)


def scan(paths: Iterable[Path], needles: dict[str, str]) -> dict[str, list[str]]:
    """{file: the values found in it (at most 5)}: an exact search of every form of every value in every
    file, one Aho-Corasick automaton for all the texts."""
    patterns = sorted(needles)
    pairs = [(str(path), text) for path in paths for text in _texts(path)]
    texts = pl.Series([text for _, text in pairs], dtype=pl.String)
    hit = texts.str.contains_any(patterns)
    owners = [owner for (owner, _), h in zip(pairs, hit.to_list()) if h]
    found: dict[str, set[str]] = {}
    for owner, matches in zip(owners, texts.filter(hit).str.extract_many(patterns, overlapping=True).to_list()):
        found.setdefault(owner, set()).update(needles[m] for m in matches)
    return {owner: sorted(values)[:5] for owner, values in found.items()}


def _files(root: Path, skip: Iterable[tuple[str, ...]] = ()) -> list[Path]:
    skip = tuple(skip)
    return [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(p.relative_to(root).parts[: len(s)] == s for s in skip)
    ]


def _landing_profiles(run) -> dict[str, list[str]]:
    columns = ["user_id", *run.pyramid_map.actionable.pii]
    relation = duckdb.sql(
        f"SELECT {', '.join(columns)} FROM read_csv('{run.lake.landing}/profiles/*/*.csv', "
        f"all_varchar = true, ignore_errors = true)"
    )
    return {name: [v for v in values if v] for name, values in zip(columns, zip(*relation.fetchall()))}


def _pii(run) -> list[str]:
    profiles = _landing_profiles(run)
    return sorted({v for column in run.pyramid_map.actionable.pii for v in profiles[column]})


# --- the scanner finds what is there ---------------------------------------------------------------


def test_the_scan_finds_values_in_plain_compressed_and_sqlite_files(tmp_path):
    values = ["ana.lopez@example.org", "Zoë Ñúñez", "+49 30 1234567"]
    (tmp_path / "plain.html").write_text(f"<td>{html.escape(values[1])}</td>", encoding="utf-8")
    pq.write_table(pa.table({"x": [["a", values[0]]]}), tmp_path / "t.parquet", compression="zstd")
    with sqlite3.connect(tmp_path / "s.db") as con:  # a value split over overflow pages, JSON-escaped
        con.execute("CREATE TABLE e (body TEXT)")
        con.execute("INSERT INTO e VALUES (?)", ["x" * 4090 + json.dumps({"v": values[1] + values[2]}) + "y" * 9000])
    (tmp_path / "clean.txt").write_text("nothing here")
    assert scan(_files(tmp_path), _needles(values)) == {
        str(tmp_path / "plain.html"): [values[1]],
        str(tmp_path / "t.parquet"): [values[0]],
        str(tmp_path / "s.db"): sorted(values[1:]),
    }


def test_the_scan_finds_the_pii_where_it_may_be(run):
    pii = _pii(run)
    assert len(pii) > 1000
    found = scan(
        [
            next(run.lake.landing.glob("profiles/*/*.csv")),
            next((run.lake.root / "lake" / "raw" / "profiles").rglob("*.parquet")),
        ],
        _needles(pii),
    )
    assert len(found) == 2 and all(len(v) == 5 for v in found.values())


# --- the run ---------------------------------------------------------------------------------------


def test_no_pii_in_the_lake_above_raw_the_catalog_the_reports_nor_dagster_storage(run):
    root, storage = run.lake.root, Path(run.instance.root_directory)
    data_files = _files(root, skip=[("lake", "raw"), ("landing",)])
    dagster_files = _files(storage)
    assert run.lake.warehouse in data_files and any(
        p.parts[-3:-1] == ("reports", "validations") or "validations" in p.parts for p in data_files
    )
    assert any(p.name == "index.html" for p in data_files)  # the Data Docs
    assert any(p.suffix == ".db" for p in dagster_files)  # runs and event logs (SQLite)
    assert scan([*data_files, *dagster_files], _needles(_pii(run))) == {}


def test_no_user_id_in_dagster_storage_and_no_erased_id_outside_raw_landing_and_the_records(run):
    erased = run.erased()
    assert len(erased) >= 4
    every_user = _landing_profiles(run)["user_id"]
    assert set(erased) <= set(every_user)
    assert scan(_files(Path(run.instance.root_directory)), _needles(every_user)) == {}
    outside = _files(run.lake.root, skip=[("lake", "raw"), ("landing",), *ERASURE_RECORDS])
    assert scan(outside, _needles(erased)) == {}
    records = _files(run.lake.root / "lake" / "actionable" / "erased_users")
    assert scan(records, _needles(erased))  # the legal record keeps them: the search sees ids
