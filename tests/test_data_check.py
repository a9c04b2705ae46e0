"""`pyramid check` against the data, and `pyramid run` refusing to start on its errors: a missing feed, a
missing column with the closest name found, a column that does not parse, and a single bad value (a
warning: the run quarantines that row). Messages and exit codes are asserted whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assets.lake import Lake
from assets.pyramid_map import load_map
from assets.source_check import FIRST_ROWS, check_sources, landed_days
from tests.test_import import cli

HEADER = "txn_id,user_id,occurred_at,amount,currency,txn_type,merchant_category,status"
COLUMNS = HEADER.replace(",", ", ")
EVENT = {"event_type": "page_view", "session_id": "s1", "channel": "web", "properties": {}}
DAYS = ("2026-10-01", "2026-10-02")


def _transactions(root: Path, day: str, rows: list[str], header: str = HEADER) -> Path:
    path = root / "landing" / "transactions" / day / "transactions-0.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _events(root: Path, day: str, user_key: str = "user_id") -> Path:
    path = root / "landing" / "events" / day / "events-0.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"event_id": f"e{n}", user_key: "u1", "occurred_at": f"{day}T10:00:0{n}Z", **EVENT} for n in range(3)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _txn(n: int, day: str = DAYS[0], amount: str = "12.50", at: str = "") -> str:
    return f"t{n},u1,{at or f'{day}T10:00:0{n}Z'},{amount},EUR,deposit,,completed"


@pytest.fixture
def root(tmp_path) -> Path:
    """Both days of events and transactions, clean; no profiles or erasure requests (optional sources)."""
    for day in DAYS:
        _events(tmp_path, day)
        _transactions(tmp_path, day, [_txn(n, day) for n in range(4)])
    return tmp_path


def _error_block(causes: list[str]) -> list[str]:
    return [
        "error: the data does not fit the map",
        *(f"  {'cause:' if n == 0 else '      '} {cause}" for n, cause in enumerate(causes)),
        "  to do: correct the landing files or the map's `sources`; `pyramid check` checks them again",
    ]


def _check(root: Path) -> tuple[int, str, list[str]]:
    code, out, err = cli("--data-root", str(root), "check")
    return code, out, err.splitlines()


def test_clean_data_checks_and_lists_each_source(root):
    code, out, err = _check(root)
    assert code == 0 and " is valid: " in out
    assert err == [
        "data: events: 2 landing days (2026-10-01 .. 2026-10-02), 2 files",
        "data: profiles: no landing file",
        "data: transactions: 2 landing days (2026-10-01 .. 2026-10-02), 2 files",
        "data: erasure_requests: no landing file",
    ]


def test_no_data_yet_is_only_a_warning(tmp_path):
    code, _, err = _check(tmp_path)
    assert code == 0
    assert err == [
        f"warning: no landing file found under {tmp_path} yet (expected landing/events/{{ds}}/*.jsonl, "
        "landing/profiles/{ds}/*.csv, landing/transactions/{ds}/*.csv, landing/erasure_requests/{ds}/*.csv)"
    ]


def test_a_required_source_missing_on_a_landed_day_is_an_error(root):
    (root / "landing" / "transactions" / DAYS[1] / "transactions-0.csv").unlink()
    code, _, err = _check(root)
    assert code == 2
    assert err[-3:] == _error_block(
        [
            f"transactions: no landing file for 1 day on which other sources landed (2026-10-02); expected "
            f"landing/transactions/2026-10-02/*.csv under {root}. A required source stops such a day: land its "
            "files, or declare it `required: false` in the map"
        ]
    )


def test_a_misspelt_column_names_file_line_and_the_close_match(root):
    path = _transactions(root, DAYS[0], [_txn(0)], header=HEADER.replace("amount", "amout"))
    code, _, err = _check(root)
    assert code == 2
    found = COLUMNS.replace("amount", "amout")
    assert err[-3:] == _error_block(
        [
            f"{path}:1: column 'amount' of source 'transactions' is missing from its header; did you mean 'amout'? "
            f"(map it under sources.transactions.columns in the map: {{amout: amount}}); found: {found}"
        ]
    )


def test_a_misspelt_json_key_is_found_among_the_first_records(root):
    path = _events(root, DAYS[0], user_key="userId")
    code, _, err = _check(root)
    assert code == 2
    assert err[-3:] == _error_block(
        [
            f"{path}:1: column 'user_id' of source 'events' is missing from the first {FIRST_ROWS} records; did you "
            "mean 'userId'? (map it under sources.events.columns in the map: {userId: user_id}); found: event_id, "
            "userId, occurred_at, event_type, session_id, channel, properties"
        ]
    )


def test_a_single_bad_value_is_a_warning_naming_file_line_and_column(root):
    path = _transactions(root, DAYS[0], [_txn(0), _txn(1, amount='"12,50"'), _txn(2)])
    code, _, err = _check(root)
    assert code == 0
    assert (
        f"warning: {path}:2: column 'amount': expected a number with a decimal point, e.g. 12.50; found '12,50' "
        "(the run quarantines the row)"
    ) in err


def test_a_column_that_does_not_parse_stops_check_and_run(root, monkeypatch):
    path = _transactions(root, DAYS[0], [_txn(n, at=f"1696161{n}00") for n in range(4)])
    causes = [
        f"{path}:1: column 'occurred_at' of source 'transactions': expected an ISO 8601 timestamp with an offset, "
        "e.g. 2026-10-01T10:00:00Z; found '1696161000' (4 of the first 4 values are not): is the right column "
        "mapped under sources.transactions.columns?"
    ]
    code, _, err = _check(root)
    assert code == 2 and err[-3:] == _error_block(causes)
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    code, out, err = cli("--data-root", str(root), "run", "--start", DAYS[0], "--end", DAYS[1])
    assert (code, out, err.splitlines()) == (2, "", _error_block(causes))
    assert not (root / "lake").exists()


def test_landed_days_read_the_day_from_the_path(root):
    (root / "landing" / "events" / "not-a-day").mkdir()
    (root / "landing" / "events" / "not-a-day" / "x.jsonl").write_text("{}\n")
    found = landed_days(Lake(root), load_map().sources["events"])
    assert {str(day): [p.name for p in files] for day, files in found.items()} == {
        DAYS[0]: ["events-0.jsonl"],
        DAYS[1]: ["events-0.jsonl"],
    }
    findings = check_sources(Lake(root), load_map(), days=[])
    assert [f.level for f in findings] == ["info"] * 4
