"""Every check can fail: freshness measured from the data, accounting against a separate count of the
landing files, erasure proven by a scan independent of the deletion. Each passes on good data and fails
on a corrupted output, a dropped row or a planted id."""

import json
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets import accounting, actionable
from assets.lake import Lake, connect, write_parquet_atomic
from assets.pyramid_map import Touchpoint, load_map
from assets.raw import land
from assets.touchpoints import measured_freshness
from pipelines.layers.actionable import accounting_check
from pipelines.layers.erasure import erasure_check, scan_for_ids
from pipelines.layers.touchpoints import newest_activity

DS = date(2026, 10, 1)
WIDGET = Touchpoint("widget", "app", 30)  # 24 h between runs + 4 h to land leaves 2 h for the data's age


@pytest.fixture(scope="module")
def pyramid():
    return load_map()


# --- freshness -------------------------------------------------------------------------------------


def write_user_daily(lake: Lake, *last_seen: datetime) -> None:
    table = pa.table(
        {
            "user_id": [f"u{i}" for i in range(len(last_seen))],
            "activity_date": pa.array([DS] * len(last_seen), pa.date32()),
            "last_seen_at": pa.array(list(last_seen), pa.timestamp("us", tz="UTC")),
            "last_txn_at": pa.nulls(len(last_seen), pa.timestamp("us", tz="UTC")),
        }
    )
    write_parquet_atomic(table, lake.partition_file("actionable", "user_daily", DS))


def freshness(lake: Lake) -> dict:
    [report] = measured_freshness([WIDGET], newest_activity(lake, DS), DS, 24, run_allowance_hours=4)
    return report


def test_freshness_passes_when_the_newest_activity_is_near_the_cut_off(tmp_path):
    lake = Lake(tmp_path)
    utc = UTC
    write_user_daily(lake, datetime(2026, 10, 1, 9, tzinfo=utc), datetime(2026, 10, 1, 23, tzinfo=utc))
    report = freshness(lake)
    assert report["ok"] is True
    assert (report["data_age_hours"], report["worst_case_age_hours"]) == (1.0, 29.0)


def test_freshness_fails_when_the_data_behind_the_export_is_old(tmp_path):
    lake = Lake(tmp_path)
    write_user_daily(lake, datetime(2026, 10, 1, 20, tzinfo=UTC))  # nothing in the last 4 hours
    report = freshness(lake)
    assert report["ok"] is False
    assert report["worst_case_age_hours"] == 32.0
    assert "4 h before the cut-off" in report["message"]


def test_freshness_fails_when_the_export_reflects_no_activity(tmp_path):
    report = freshness(Lake(tmp_path))  # no user_daily partition for the day
    assert report["ok"] is False and "no activity" in report["message"]


# --- accounting ------------------------------------------------------------------------------------


def event_line(n: int, user: str = "u1") -> str:
    return json.dumps(
        {
            "event_id": f"e{n}",
            "user_id": user,
            "event_type": "page_view",
            "occurred_at": "2026-10-01T10:00:00Z",
            "session_id": "s1",
            "channel": "app",
        }
    )


LINES = [event_line(1), event_line(2), "", event_line(1), event_line(3, user="u9"), '{"event_id": "e4", "us']


@pytest.fixture()
def cleaned(tmp_path, pyramid):
    """A day of events landed, cleaned and written as the asset writes it: (lake, source, result)."""
    lake, source = Lake(tmp_path), pyramid.sources["events"]
    landing = tmp_path / f"landing/events/{DS}/events-0.jsonl"
    landing.parent.mkdir(parents=True)
    landing.write_text("\n".join(LINES) + "\n")
    raw = land(connect(), lake, source, DS)
    write_parquet_atomic(raw, lake.partition_file("raw", "events", DS))
    result = actionable.clean_events(connect(), raw, DS, pa.table({"user_id": ["u1"]}), None, pyramid.actionable)
    write_parquet_atomic(result.table, lake.partition_file("actionable", "events", DS))
    write_parquet_atomic(result.quarantine, lake.partition_file("actionable", "quarantine_events", DS))
    return lake, source, result


def test_accounting_balances_a_clean_run(cleaned):
    lake, source, result = cleaned
    check = accounting_check(lake, "events", source, DS, result)
    assert check.passed
    figures = {k: v.value for k, v in check.metadata.items()}
    assert figures == {
        "landed_records": 5,
        "landing_files": 1,
        "raw_rows": 5,
        "actionable_rows": 2,
        "quarantined_rows": 2,
        "duplicates_removed": 1,
    }


def test_accounting_fails_when_an_output_loses_a_row(cleaned):
    lake, source, result = cleaned
    path = lake.partition_file("actionable", "quarantine_events", DS)
    write_parquet_atomic(pq.read_table(path).slice(1), path)  # one quarantined row dropped after the fact
    check = accounting_check(lake, "events", source, DS, result)
    assert not check.passed
    assert "5 records in 1 landing file(s)" in check.description and "1 quarantined" in check.description


def test_accounting_fails_when_the_landing_holds_more_than_raw(cleaned):
    lake, source, result = cleaned
    landing = lake.root / f"landing/events/{DS}/events-0.jsonl"
    landing.write_text(landing.read_text() + event_line(7) + "\n")  # a record the landing step never saw
    assert not accounting_check(lake, "events", source, DS, result).passed


def test_the_separate_count_of_csv_and_jsonl():
    assert accounting.jsonl_records(b'\xef\xbb\xbf{}\n \r\n\t\n{"a\n[1]') == 3
    data = b'a,b,c\n1,2,3\n"x\ny",2,3\n1,2\n\n4,5,6'  # quoted newline, a short row, a blank line
    assert accounting.csv_records(data) == 4
    assert accounting.csv_records(b"a,b,c\n") == 0 and accounting.csv_records(b"") == 0


# --- erasure ---------------------------------------------------------------------------------------


def write(lake: Lake, layer: str, table: str, **columns) -> None:
    write_parquet_atomic(pa.table(columns), lake.partition_file(layer, table, DS))


@pytest.fixture()
def erased_lake(tmp_path):
    lake = Lake(tmp_path)
    write(lake, "raw", "erasure_requests", user_id=["u0000042"], requested_at=["2026-10-01T08:00:00Z"])
    write(lake, "actionable", "erased_users", user_id=["u0000042"])  # the legal record: kept
    write(lake, "segments", "segment_membership", user_id=["u0000001", "u0000002"], segment_id=["a", "b"])
    write(lake, "actionable", "quarantine_events", payload=['{"user_id": "u0000003"}'], reasons=[["x"]])
    return lake


def check(lake: Lake) -> bool:
    return erasure_check(lake, DS, ["u0000042"], ["u0000042"]).passed


def test_erasure_check_passes_when_only_the_request_records_mention_the_user(erased_lake):
    assert check(erased_lake)


@pytest.mark.parametrize(
    "layer, table, columns",
    [
        ("segments", "segment_membership", {"user_id": ["u0000001", "u0000042"], "segment_id": ["a", "b"]}),
        ("actionable", "quarantine_events", {"payload": ['{"uid": "u0000042"}'], "reasons": [["x"]]}),
        ("goals", "some_new_table", {"member": ["u0000042"]}),  # a column name the deletion does not know
    ],
)
def test_erasure_check_fails_on_a_planted_id(erased_lake, layer, table, columns):
    write(erased_lake, layer, table, **columns)
    assert not check(erased_lake)
    assert scan_for_ids(erased_lake, ["u0000042"]) == {f"{layer}/{table}": 1}


def test_erasure_check_scans_the_days_files_for_every_erased_user(erased_lake):
    write(erased_lake, "touchpoints", "weekly_email", user_id=["u0000042"])
    later = DS + timedelta(days=1)
    assert not erasure_check(erased_lake, DS, ["u0000042"], []).passed  # not new, but in the day's files
    assert erasure_check(erased_lake, later, ["u0000042"], []).passed  # other days were proven before


def test_the_erasure_scan_matches_ids_literally_and_clears_matches_across_values(tmp_path):
    lake = Lake(tmp_path)
    odd = "ü.1+(x)'"  # regex syntax, a quote and a non-ASCII letter: matched as written
    write(lake, "goals", "t", a=["u00", "00042", "ü.1+(x)'!", "ux1+(x)'"], b=[None, "z", "y", "x"])
    assert scan_for_ids(lake, ["u0000042"]) == {}  # "u00" + "00042" are back to back in the buffer only
    assert scan_for_ids(lake, [odd]) == {"goals/t": 1}
    assert scan_for_ids(lake, []) == {}
