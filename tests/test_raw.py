"""raw.land: every landed record with its file and line, broken ones kept with their raw text."""

from dataclasses import replace
from datetime import date

import pyarrow as pa
import pytest

from assets.contract import CANONICAL_COLUMNS
from assets.lake import Lake, connect
from assets.landing import LandingError
from assets.pyramid_map import load_map
from assets.raw import land, raw_schema

DS = date(2026, 10, 1)
TXN_HEADER = "txn_id,user_id,occurred_at,amount,currency,txn_type,merchant_category,status"


@pytest.fixture(scope="module")
def sources():
    return load_map().sources


def write(root, relative, data):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def rows_by_line(table):
    return {row["_source_line"]: row for row in table.to_pylist()}


def test_jsonl_lines_are_landed_with_numbers_and_broken_ones_kept(tmp_path, sources):
    lines = [
        b'{"event_id":"e1","user_id":"u1","event_type":"page_view","occurred_at":"2026-10-01T10:00:00Z",'
        b'"properties":{"feature":"budget_tool","n":[1,2]}}',
        b"",  # blank: not a record, still a line
        b'{"event_id": 7, "user_id": "u2", "session_id": null}',
        b'{"event_id": "e3", "user_id": ',  # truncated
        b"[1, 2]",  # JSON, but not an object
        b'\xff{"event_id":"e4"}',  # not UTF-8
        b'{"event_id":"e5","channel":"app"}\r',  # CRLF line ending
        b'{"event_id":"e6"}',  # last line without newline
    ]
    write(tmp_path, f"landing/events/{DS}/events-a.jsonl", b"\n".join(lines))
    table = land(connect(), Lake(tmp_path), sources["events"], DS)

    assert table.schema == raw_schema("events")
    assert table.column("_source_line").to_pylist() == [1, 3, 4, 5, 6, 7, 8]
    assert set(table.column("_source_file").to_pylist()) == {f"landing/events/{DS}/events-a.jsonl"}
    rows = rows_by_line(table)
    assert rows[1]["event_id"] == "e1" and rows[1]["occurred_at"] == "2026-10-01T10:00:00Z"
    assert rows[1]["properties"] == '{"feature":"budget_tool","n":[1,2]}'
    assert rows[1]["_raw_text"] is None and rows[1]["session_id"] is None
    assert (rows[3]["event_id"], rows[3]["user_id"], rows[3]["session_id"]) == ("7", "u2", None)
    assert rows[4]["_raw_text"] == '{"event_id": "e3", "user_id": '
    assert rows[5]["_raw_text"] == "[1, 2]"
    assert rows[6]["_raw_text"] == "\\xFF{\\x22event_id\\x22:\\x22e4\\x22}"
    for broken in (4, 5, 6):
        assert all(rows[broken][c] is None for c in CANONICAL_COLUMNS["events"])
    assert (rows[7]["event_id"], rows[7]["channel"], rows[7]["_raw_text"]) == ("e5", "app", None)
    assert rows[8]["event_id"] == "e6"


def test_jsonl_byte_order_mark_is_ignored(tmp_path, sources):
    write(tmp_path, f"landing/events/{DS}/events-a.jsonl", b'\xef\xbb\xbf{"event_id":"e1"}\n{"event_id":"e2"}\n')
    table = land(connect(), Lake(tmp_path), sources["events"], DS)
    assert table.column("event_id").to_pylist() == ["e1", "e2"]
    assert table.column("_raw_text").null_count == 2


def test_every_file_of_the_day_is_landed_in_name_order(tmp_path, sources):
    write(tmp_path, f"landing/events/{DS}/events-b.jsonl", '{"event_id":"b1"}\n')
    write(tmp_path, f"landing/events/{DS}/events-a.jsonl", '{"event_id":"a1"}\n{"event_id":"a2"}\n')
    write(tmp_path, "landing/events/2026-10-02/events-a.jsonl", '{"event_id":"other day"}\n')
    table = land(connect(), Lake(tmp_path), sources["events"], DS)
    assert table.column("event_id").to_pylist() == ["a1", "a2", "b1"]
    assert table.column("_source_line").to_pylist() == [1, 2, 1]


def test_source_column_names_are_mapped_to_canonical(tmp_path, sources):
    events = replace(sources["events"], columns={"id": "event_id", "uid": "user_id"})
    write(tmp_path, f"landing/events/{DS}/events-a.jsonl", '{"id":"e1","uid":"u1","event_id":"ignored"}\n')
    row = land(connect(), Lake(tmp_path), events, DS).to_pylist()[0]
    assert (row["event_id"], row["user_id"]) == ("e1", "u1")

    txns = replace(sources["transactions"], columns={"value": "amount"})
    write(
        tmp_path,
        f"landing/transactions/{DS}/t.csv",
        TXN_HEADER.replace("amount", "value") + "\nt1,u1,x,12.5,EUR,deposit,,completed\n",
    )
    assert land(connect(), Lake(tmp_path), txns, DS).column("amount").to_pylist() == ["12.5"]


def test_csv_rows_with_wrong_field_counts_are_kept_with_their_data_row_number(tmp_path, sources):
    body = (
        "\n".join(
            [
                TXN_HEADER,
                "t1,u1,2026-10-01T10:00:00Z,12.50,EUR,deposit,,completed",
                "t2,u1,2026-10-01T11:00:00Z,3",  # too few fields
                't3,u2,2026-10-01T12:00:00+02:00,7,EUR,card_payment,"food, drinks",completed',
                "t4,u2,x,1,EUR,deposit,shop,completed,extra",  # too many fields
                't5,u3,2026-10-01T13:00:00Z,9,GBP,transfer_in,"multi\nline",pending',  # one row, two lines
                "t6,u3,2026-10-01T14:00:00Z,1,USD,transfer_out,,failed",
            ]
        )
        + "\n"
    )
    write(tmp_path, f"landing/transactions/{DS}/transactions-1.csv", body)
    table = land(connect(), Lake(tmp_path), sources["transactions"], DS)

    assert table.schema == raw_schema("transactions")
    assert table.column("_source_line").to_pylist() == [1, 2, 3, 4, 5, 6]
    rows = rows_by_line(table)
    assert rows[1]["amount"] == "12.50" and rows[1]["merchant_category"] is None
    assert rows[2]["_raw_text"] == "t2,u1,2026-10-01T11:00:00Z,3" and rows[2]["txn_id"] is None
    assert rows[3]["merchant_category"] == "food, drinks"
    assert rows[4]["_raw_text"] == "t4,u2,x,1,EUR,deposit,shop,completed,extra"
    assert all(rows[4][c] is None for c in CANONICAL_COLUMNS["transactions"])
    assert rows[5]["merchant_category"] == "multi\nline" and rows[5]["status"] == "pending"
    assert rows[6]["txn_id"] == "t6" and rows[6]["_raw_text"] is None


def test_csv_header_must_name_every_canonical_column(tmp_path, sources):
    path = write(tmp_path, f"landing/transactions/{DS}/t.csv", TXN_HEADER.replace(",currency", "") + "\n")
    with pytest.raises(LandingError) as err:
        land(connect(), Lake(tmp_path), sources["transactions"], DS)
    assert str(path) in str(err.value) and "'currency'" in str(err.value)


def test_empty_csv_file_is_an_error_naming_the_file(tmp_path, sources):
    path = write(tmp_path, f"landing/erasure_requests/{DS}/e.csv", "")
    with pytest.raises(LandingError, match="expected a CSV header") as err:
        land(connect(), Lake(tmp_path), sources["erasure_requests"], DS)
    assert str(path) in str(err.value)


def test_unreadable_file_is_an_error_naming_the_file(tmp_path, sources):
    folder = tmp_path / f"landing/events/{DS}/events-x.jsonl"
    folder.mkdir(parents=True)  # matches the glob, cannot be read
    with pytest.raises(LandingError, match="events-x.jsonl: cannot be read"):
        land(connect(), Lake(tmp_path), sources["events"], DS)


def test_no_files_gives_an_empty_table_with_the_schema(tmp_path, sources):
    for name, source in sources.items():
        table = land(connect(), Lake(tmp_path), source, DS)
        assert table.num_rows == 0 and table.schema == raw_schema(name)


def test_header_only_csv_gives_no_rows(tmp_path, sources):
    write(tmp_path, f"landing/erasure_requests/{DS}/e.csv", "user_id,requested_at\n")
    assert land(connect(), Lake(tmp_path), sources["erasure_requests"], DS).num_rows == 0


def test_profiles_keep_every_column_as_text(tmp_path, sources):
    header = ",".join(CANONICAL_COLUMNS["profiles"])
    write(
        tmp_path,
        f"landing/profiles/{DS}/p.csv",
        "\ufeff"
        + header
        + "\r\nu1,2026-10-01T08:00:00Z,2026-01-01T00:00:00Z,FR,1990,basic,true,false,a@b.c,+331,Ann Lee\r\n",
    )
    table = land(connect(), Lake(tmp_path), sources["profiles"], DS)
    assert table.schema == raw_schema("profiles")
    row = table.to_pylist()[0]
    assert (row["user_id"], row["birth_year"], row["consent_personalization"], row["full_name"]) == (
        "u1",
        "1990",
        "true",
        "Ann Lee",
    )
    assert all(pa.types.is_string(t) for t in table.schema.types[:-3])


def test_the_raw_check_names_the_lines_that_did_not_parse():
    from pipelines.layers.raw import parse_check

    landed = pa.table(
        {
            "event_id": ["e1", None, "e3"],
            "_source_file": ["landing/events/2026-10-01/events-0.jsonl"] * 3,
            "_source_line": [1, 2, 3],
            "_raw_text": [None, "{not json", None],
        }
    )
    check = parse_check(landed)
    assert not check.passed
    assert check.metadata["unparseable_rows"].value == 1
    assert check.metadata["first_unparseable"].value == "landing/events/2026-10-01/events-0.jsonl:2"
    assert parse_check(landed.slice(0, 1)).passed
