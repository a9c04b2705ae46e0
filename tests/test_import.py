"""`pyramid import`: a history export split into daily landing partitions by the UTC day of its event time.

The split is checked against an independent one of the same file (Polars parses the timestamps and
groups by UTC date); the CLI's output, refusals and `--replace` are asserted line by line."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from unittest import mock

import polars as pl
import pytest

from assets.pyramid_map import DEFAULT_MAP_PATH, load_map
from pipelines.cli import main
from pipelines.sample.generate import generate_sample

TIMESTAMP = "%Y-%m-%dT%H:%M:%S%.f%#z"  # ISO 8601 with an offset (Z, +02:00), fraction optional


def cli(*argv: str) -> tuple[int, str, str]:
    """Run `pyramid argv...` in this process; its exit code, standard output and standard error."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--map", str(DEFAULT_MAP_PATH), *argv])
    return code, out.getvalue(), err.getvalue()


def plain(text: str) -> str:
    return " ".join(text.split())


def utc_day(timestamps: pl.Expr) -> pl.Expr:
    return timestamps.str.to_datetime(format=TIMESTAMP, strict=False, time_zone="UTC").dt.date()


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """The seeded sample's 4 days of events (JSON lines) and transactions (CSV), each as one export file."""
    root = tmp_path_factory.mktemp("sample")
    generate_sample(root / "landing", users=150, days=4, seed=3, pyramid_map=load_map())
    events = root / "events-history.jsonl"
    events.write_bytes(b"".join(p.read_bytes() for p in sorted((root / "landing" / "events").glob("*/*.jsonl"))))
    csvs = sorted((root / "landing" / "transactions").glob("*/*.csv"))
    header = csvs[0].read_text().split("\n", 1)[0]
    bodies = [p.read_text().split("\n", 1)[1] for p in csvs]
    transactions = root / "transactions-history.csv"
    transactions.write_text(header + "\n" + "".join(bodies))
    return {"events": events, "transactions": transactions}


def test_a_jsonl_export_lands_as_an_independent_split_by_utc_day(exports, tmp_path):
    code, out, err = cli("--data-root", str(tmp_path), "import", "events", str(exports["events"]))
    assert code == 0, err
    lines = exports["events"].read_text().splitlines()
    export = pl.DataFrame({"line": lines, "occurred_at": [json.loads(x).get("occurred_at") for x in lines]})
    export = export.with_columns(day=utc_day(pl.col("occurred_at")))
    expected = {
        str(k[0]): g["line"].to_list() for k, g in export.drop_nulls("day").group_by("day", maintain_order=True)
    }
    landed = {p.parent.name: p.read_text().splitlines() for p in (tmp_path / "landing" / "events").glob("*/*.jsonl")}
    assert landed == expected and len(expected) >= 4
    assert [p.name for p in (tmp_path / "landing" / "events").glob("*/*")] == ["imported.jsonl"] * len(expected)
    counts = [f"{day} {len(rows):,} rows" for day, rows in sorted(expected.items())]
    total = sum(len(rows) for rows in expected.values())
    assert plain(out).startswith(
        " ".join(counts) + f" imported {total:,} events rows into {len(expected)} landing days"
    )
    unplaced = export.filter(pl.col("day").is_null())
    assert f"warning: {unplaced.height} records have no event time" in plain(err)
    (kept,) = (tmp_path / "import" / "events").glob("unplaced-*.jsonl")
    assert kept.read_text().splitlines() == unplaced["line"].to_list()


def test_a_csv_export_keeps_its_header_on_every_day(exports, tmp_path):
    code, _, err = cli("--data-root", str(tmp_path), "import", "transactions", str(exports["transactions"]))
    assert code == 0, err
    export = pl.read_csv(exports["transactions"], infer_schema=False).with_columns(day=utc_day(pl.col("occurred_at")))
    days = sorted(p.parent.name for p in (tmp_path / "landing" / "transactions").glob("*/imported.csv"))
    assert days == sorted(str(d) for d in export["day"].drop_nulls().unique())
    for day in days:
        landed = pl.read_csv(tmp_path / "landing" / "transactions" / day / "imported.csv", infer_schema=False)
        assert landed.equals(export.filter(pl.col("day").cast(pl.String) == day).drop("day"))


EVENT = {"user_id": "u1", "event_type": "page_view", "session_id": "s1", "channel": "web", "properties": {}}


def _events(path: Path, timestamps: list[str | None], broken_line: int | None = None) -> Path:
    rows = [json.dumps({"event_id": f"e{n}", **EVENT, "occurred_at": ts}) for n, ts in enumerate(timestamps)]
    if broken_line:
        rows.insert(broken_line - 1, '{"event_id": "cut')
    path.write_text("\n".join(rows) + "\n")
    return path


def test_offsets_near_midnight_land_on_their_utc_day_and_undated_records_are_named(tmp_path):
    export = _events(
        tmp_path / "export.jsonl",
        [
            "2026-10-01T23:30:00-02:00",  # 2026-10-02 01:30 UTC
            "2026-10-02T00:30:00+02:00",  # 2026-10-01 22:30 UTC
            "2026-10-01T23:59:59.999999Z",
            "2026-10-02 00:00:00+00",
            "2026-10-02T00:15:00",  # naive: no offset, no day
        ],
        broken_line=3,
    )
    code, out, err = cli("--data-root", str(tmp_path), "import", "events", str(export))
    assert code == 0
    assert out.splitlines() == [
        "  2026-10-01           2 rows",
        "  2026-10-02           2 rows",
        "imported 4 events rows into 2 landing days (2026-10-01 .. 2026-10-02)",
        "then: pyramid run --start 2026-10-01 --end 2026-10-02",
    ]
    (kept,) = (tmp_path / "import" / "events").glob("unplaced-*.jsonl")
    assert plain(err) == (
        f"warning: 2 records have no event time (a timestamp with an offset) and were not landed; kept as they were "
        f"in {kept}: {export.as_posix()}:3 {export.as_posix()}:6"
    )
    day = tmp_path / "landing" / "events"
    assert [json.loads(x)["event_id"] for x in (day / "2026-10-01" / "imported.jsonl").read_text().splitlines()] == [
        "e1",
        "e2",
    ]
    assert [json.loads(x)["event_id"] for x in (day / "2026-10-02" / "imported.jsonl").read_text().splitlines()] == [
        "e0",
        "e3",
    ]
    assert kept.read_text().splitlines()[0] == '{"event_id": "cut'


def test_landed_days_are_refused_unless_replace(tmp_path):
    export = _events(tmp_path / "export.jsonl", ["2026-10-01T10:00:00Z", "2026-10-03T10:00:00Z"])
    older = tmp_path / "landing" / "events" / "2026-10-03" / "events-0.jsonl"
    older.parent.mkdir(parents=True)
    older.write_text("{}\n")
    code, out, err = cli("--data-root", str(tmp_path), "import", "events", str(tmp_path / "export.*"))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: nothing imported",
        "  cause: 1 of the export's days already have landing files for source 'events' (2026-10-03); nothing was "
        "imported",
        "  to do: import again with --replace to replace those days' landing files",
    ]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "landing").rglob("*.jsonl")) == [
        "landing/events/2026-10-03/events-0.jsonl"
    ]
    code, out, _ = cli("--data-root", str(tmp_path), "import", "events", str(export), "--replace")
    assert code == 0 and "imported 2 events rows into 2 landing days" in out
    assert not older.exists() and not list((tmp_path / "tmp").iterdir())
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "landing").rglob("*.jsonl")) == [
        "landing/events/2026-10-01/imported.jsonl",
        "landing/events/2026-10-03/imported.jsonl",
    ]


def test_an_export_without_any_event_time_is_refused(tmp_path):
    export = _events(tmp_path / "export.jsonl", ["1696161600", "1696161601"])
    code, out, err = cli("--data-root", str(tmp_path), "import", "events", str(export))
    assert (code, out) == (1, "")
    assert plain(err) == plain(
        f"""error: nothing imported
        cause: no record of the export has an event time: column 'occurred_at' of source 'events' must be an ISO 8601
        timestamp with an offset, e.g. 2026-10-01T10:00:00Z (first records: {export.as_posix()}:1,
        {export.as_posix()}:2); map the source's timestamp column under `columns` in pyramid.yaml; nothing was imported
        to do: correct the export or the map, then import again"""
    )
    assert not (tmp_path / "landing").exists()
    code, _, err = cli("--data-root", str(tmp_path), "import", "events", str(tmp_path / "nothing-*.jsonl"))
    assert code == 2 and f"cause: no file matches {tmp_path / 'nothing-*.jsonl'}" in err


def test_csv_files_of_one_export_must_share_their_header(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("txn_id,user_id,occurred_at,amount,currency,txn_type,merchant_category,status\n")
    second.write_text("user_id,txn_id,occurred_at,amount,currency,txn_type,merchant_category,status\n")
    for path in (first, second):
        row = "t1,u1" if path == first else "u1,t2"
        path.write_text(path.read_text() + f"{row},2026-10-01T10:00:00Z,1.50,EUR,deposit,,completed\n")
    code, out, err = cli("--data-root", str(tmp_path), "import", "transactions", str(tmp_path / "*.csv"))
    assert (code, out) == (1, "")
    assert plain(err) == plain(
        f"""error: nothing imported
        cause: {second}: its CSV header differs from the one of {first}; the files of one export must share their
        header (import such files one after another into days they do not share); nothing was imported
        to do: correct the export or the map, then import again"""
    )
    assert not (tmp_path / "landing").exists()


def test_profiles_dated_before_the_start_of_history_land_on_its_first_day(tmp_path):
    from datetime import date

    from assets.lake import Lake
    from pipelines.history_import import import_history

    export = tmp_path / "profiles.csv"
    header = "user_id,email,phone,full_name,country,birth_year,plan,signup_at,updated_at"
    header += ",consent_personalization,consent_marketing"
    rows = [
        "u1,a@x.io,,A,FR,1990,free,2025-01-01T00:00:00Z,2025-06-01T10:00:00Z,true,false",
        "u2,b@x.io,,B,DE,1980,gold,2026-09-30T00:00:00Z,2026-09-30T23:00:00Z,true,true",
        "u3,c@x.io,,C,ES,1970,free,2026-10-02T00:00:00Z,2026-10-02T08:00:00Z,false,false",
    ]
    export.write_text("\n".join([header, *rows]) + "\n")
    pyramid_map = load_map()
    lake = Lake(tmp_path / "data")
    result = import_history(lake, pyramid_map.sources["profiles"], [export], first_day=pyramid_map.start_date)
    assert result.rows_per_day == {date(2026, 10, 1): 2, date(2026, 10, 2): 1}


@pytest.mark.parametrize(
    "change, found",
    [
        ({"compression": "gzip"}, "source 'events' is gzip-compressed (decompress the export first)"),
        ({"format": "parquet"}, "source 'events' is parquet"),
    ],
)
def test_an_export_the_import_cannot_split_by_bytes_is_refused_before_any_work(tmp_path, change, found):
    from dataclasses import replace

    from assets.lake import Lake
    from pipelines.history_import import ImportRefused, import_history

    source = replace(load_map().sources["events"], **change)
    with pytest.raises(ImportRefused) as refused:
        import_history(Lake(tmp_path), source, [tmp_path / "never-read.jsonl"])
    assert str(refused.value) == (
        f"pyramid import reads uncompressed JSON lines and CSV with a header and '\"' quotes; {found}"
    )
    assert refused.value.exit_code == 2 and not any(tmp_path.iterdir())
