"""Whole-file faults (assets/file_faults.py): a column renamed upstream or a type changed upstream refuses
the file with an error naming the file, the column and what was expected, while a file of mostly good rows
still goes row by row to the quarantine; and through Dagster, a faulty file overwrites nothing already
built and leaves no half-written partition."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from datetime import date, timedelta

import dagster as dg
import pyarrow as pa
import pytest

from assets import actionable
from assets.contract import CANONICAL_COLUMNS
from assets.file_faults import MIN_TYPED_VALUES, check_files
from assets.lake import Lake, connect
from assets.landing import LandingError, landing_files
from assets.pyramid_map import load_map
from assets.raw import land
from assets.source_mapping import required_columns
from pipelines.definitions import NIGHTLY_JOB, build_definitions
from pipelines.resources import PyramidResource
from pipelines.runner import QUIET
from pipelines.sample.generate import generate_sample

DS = date(2026, 10, 1)
PMAP = load_map()
ROWS = MIN_TYPED_VALUES + 5
TXN_HEADER = ",".join(CANONICAL_COLUMNS["transactions"])
PROFILE_HEADER = ",".join(CANONICAL_COLUMNS["profiles"])


def event(i: int, **changes) -> dict:
    record = {
        "event_id": f"e{i}",
        "user_id": f"user-{i}",
        "event_type": "page_view",
        "occurred_at": "2026-10-01T10:00:00Z",
        "session_id": f"s{i}",
        "channel": "web",
        "campaign_id": None,
        "touchpoint_id": None,
        "properties": {},
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v != "drop"}


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def txn_csv(amount=lambda i: "12.50", occurred_at=lambda i: "2026-10-01T10:00:00Z", header=TXN_HEADER) -> bytes:
    rows = [f't{i},user-{i},{occurred_at(i)},"{amount(i)}",EUR,deposit,groceries,completed' for i in range(ROWS)]
    return "\n".join([header, *rows, ""]).encode()


def profiles_csv(consent: str) -> bytes:
    rows = [
        f"p{i},2026-10-01T09:00:00Z,2025-01-01T00:00:00Z,DE,1980,free,true,{consent},p{i}@example.com,+4917{i},Name {i}"
        for i in range(ROWS)
    ]
    return "\n".join([PROFILE_HEADER, *rows, ""]).encode()


def land_checked(root, source_name: str, name: str, data: bytes):
    path = root / "landing" / source_name / DS.isoformat() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    lake, source = Lake(root), PMAP.sources[source_name]
    table = land(connect(), lake, source, DS)
    check_files(table, landing_files(lake, source, DS), source)
    return path, table


def refused(root, source_name: str, name: str, data: bytes) -> tuple[str, str]:
    path = root / "landing" / source_name / DS.isoformat() / name
    with pytest.raises(LandingError) as raised:
        land_checked(root, source_name, name, data)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "the file is refused and nothing of the day is written" in message
    return str(path), message


# --- type changed upstream ---------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["12,50", "N/A"])
def test_an_amount_turned_text_refuses_the_file_naming_column_type_and_values(tmp_path, amount):
    _, message = refused(tmp_path, "transactions", "transactions-0.csv", txn_csv(amount=lambda i: amount))
    assert "column 'amount' changed upstream" in message
    assert f"{ROWS} of its {ROWS} non-null values are not a number with a decimal point" in message
    assert f"found {amount!r}" in message


def test_epoch_timestamps_refuse_the_file(tmp_path):
    records = [event(i, occurred_at=1790000000 + i) for i in range(ROWS)]
    _, message = refused(tmp_path, "events", "events-0.jsonl", jsonl(records))
    assert "column 'occurred_at' changed upstream" in message
    assert "not an ISO 8601 timestamp with an offset" in message and "'1790000000'" in message


def test_an_id_turned_object_is_described_never_shown(tmp_path):
    records = [event(i, user_id={"id": f"user-{i}"}) for i in range(ROWS)]
    _, message = refused(tmp_path, "events", "events-0.jsonl", jsonl(records))
    assert "column 'user_id' changed upstream" in message and "not a single value" in message
    assert "values not shown: JSON objects" in message
    assert "user-" not in message  # no id, not even a piece of one


def test_a_consent_flag_turned_text_refuses_profiles_without_showing_pii(tmp_path):
    _, message = refused(tmp_path, "profiles", "profiles-0.csv", profiles_csv("yes"))
    assert "column 'consent_marketing' changed upstream" in message and "true or false" in message
    assert "'yes'" in message
    assert "@example.com" not in message and "Name " not in message and "p0" not in message


def test_a_file_of_mostly_good_rows_goes_row_by_row_to_quarantine(tmp_path):
    data = txn_csv(amount=lambda i: "12,50" if i < 3 else "12.50")
    _, raw = land_checked(tmp_path, "transactions", "transactions-0.csv", data)
    known = pa.table({"user_id": [f"user-{i}" for i in range(ROWS)]})
    result = actionable.clean_transactions(connect(), raw, DS, known, None, PMAP.actionable)
    assert result.quarantine.num_rows == 3 and result.table.num_rows == ROWS - 3


def test_a_small_file_of_bad_values_stays_a_row_fault(tmp_path):
    """Below MIN_TYPED_VALUES non-null values the share says little: the rows are quarantined one by one."""
    header, *rows = txn_csv(amount=lambda i: "N/A").decode().splitlines()
    small = "\n".join([header, *rows[: MIN_TYPED_VALUES - 1], ""]).encode()
    _, raw = land_checked(tmp_path, "transactions", "transactions-0.csv", small)
    assert raw.num_rows == MIN_TYPED_VALUES - 1


def test_nulls_do_not_count_as_a_changed_type(tmp_path):
    records = [event(i, occurred_at=None if i else 1790000000) for i in range(ROWS)]  # one bad, the rest null
    _, raw = land_checked(tmp_path, "events", "events-0.jsonl", jsonl(records))
    assert raw.num_rows == ROWS


# --- renamed upstream -------------------------------------------------------------------------------------


def test_a_key_renamed_in_json_lines_names_the_missing_column_and_the_unknown_key(tmp_path):
    records = [event(i, user_id="drop", userId=f"user-{i}") for i in range(3)]  # a rename, however few rows
    _, message = refused(tmp_path, "events", "events-0.jsonl", jsonl(records))
    assert "no record has the key 'user_id'; unexpected: 'userId' (renamed upstream?" in message
    assert "expected keys for source 'events': event_id, user_id," in message


def test_an_absent_key_without_an_unknown_one_stays_a_row_fault(tmp_path):
    records = [event(i, user_id="drop") for i in range(3)]
    _, raw = land_checked(tmp_path, "events", "events-0.jsonl", jsonl(records))
    assert raw.column("user_id").null_count == 3  # quarantined later as missing_user_id


def test_an_optional_key_may_be_absent_beside_an_unknown_one(tmp_path):
    assert "campaign_id" not in required_columns("events") and "user_id" in required_columns("events")
    records = [event(i, campaign_id="drop", touchpoint_id="drop", debug=True) for i in range(3)]
    _, raw = land_checked(tmp_path, "events", "events-0.jsonl", jsonl(records))
    assert raw.num_rows == 3


def test_a_csv_column_renamed_upstream_names_the_unexpected_column(tmp_path):
    data = txn_csv(header=TXN_HEADER.replace("amount", "amount_eur"))
    _, message = refused_on_landing(tmp_path, "transactions", "transactions-0.csv", data)
    assert "CSV header lacks 'amount'" in message and "unexpected: 'amount_eur' (renamed upstream?" in message


def test_a_csv_with_a_wrong_delimiter_says_so(tmp_path):
    data = TXN_HEADER.replace(",", ";").encode() + b"\n1;2\n"
    _, message = refused_on_landing(tmp_path, "transactions", "transactions-0.csv", data)
    assert "a wrong delimiter? (expected ',')" in message


def test_a_truncated_gzip_names_the_compression(tmp_path):
    data = gzip.compress(jsonl([event(i) for i in range(200)]))[:100]
    _, message = refused(tmp_path, "events", "events-0.jsonl", data)
    assert "gzip-compressed, perhaps cut off" in message


def refused_on_landing(root, source_name: str, name: str, data: bytes) -> tuple[str, str]:
    """CSV header faults stop `land` itself, before any row is read."""
    path = root / "landing" / source_name / DS.isoformat() / name
    with pytest.raises(LandingError) as raised:
        land_checked(root, source_name, name, data)
    assert str(raised.value).startswith(f"{path}: ")
    return str(path), str(raised.value)


# --- through Dagster: nothing overwritten, nothing half-written --------------------------------------------


def _corrupt_events_gzip(path):
    path.write_bytes(gzip.compress(path.read_bytes())[:300])


def _rename_amount(path):
    header, rest = path.read_text().split("\n", 1)
    path.write_text(header.replace("amount", "amount_eur") + "\n" + rest)


def _epoch_timestamps(path):
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps({**r, "occurred_at": 1790000000 + n}) + "\n" for n, r in enumerate(lines)))


FAULTS = {
    "truncated gzip": ("events", _corrupt_events_gzip, "gzip-compressed"),
    "renamed column": ("transactions", _rename_amount, "CSV header lacks 'amount'"),
    "type changed": ("events", _epoch_timestamps, "the type of column 'occurred_at' changed upstream"),
}


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """Three landed days of a small sample; the first two processed by the nightly job."""
    root = tmp_path_factory.mktemp("faults")
    generate_sample(root / "landing", users=300, days=3, seed=11, pyramid_map=PMAP)
    job = build_definitions(PMAP, PyramidResource(data_root=str(root))).resolve_job_def(NIGHTLY_JOB)
    days = [PMAP.start_date + timedelta(days=n) for n in range(3)]
    instance = dg.DagsterInstance.ephemeral()
    for day in days[:2]:
        assert _run(job, day, instance).success
    return job, Lake(root), days, instance


def _run(job, day: date, instance) -> dg.ExecuteInProcessResult:
    return job.execute_in_process(
        partition_key=day.isoformat(), instance=instance, raise_on_error=False, run_config=QUIET
    )


def _lake_files(lake: Lake) -> dict[str, str]:
    """Every file of the lake (Parquet partitions, landing manifests) with the SHA-256 of its bytes."""
    lake_root = lake.root / "lake"
    return {
        p.relative_to(lake_root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(lake_root.rglob("*"))
        if p.is_file()
    }


def _failure_messages(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {e.step_key: e.step_failure_data.error.cause.message for e in result.all_events if e.is_step_failure}


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_a_faulty_file_for_a_processed_day_overwrites_nothing(processed, fault):
    job, lake, days, instance = processed
    source, corrupt, problem = FAULTS[fault]
    [path] = (lake.landing / source / days[0].isoformat()).glob("*.*")
    backup = path.with_name(".backup")
    shutil.copy2(path, backup)
    before = _lake_files(lake)
    assert any(f"ds={days[0]}" in f for f in before) and any(f"ds={days[1]}" in f for f in before)
    try:
        corrupt(path)
        result = _run(job, days[0], instance)
    finally:
        shutil.move(backup, path)
    assert not result.success
    messages = _failure_messages(result)
    assert set(messages) == {f"raw_{s}" for s in PMAP.sources}  # every raw step stops, none writes
    for message in messages.values():
        assert f"{path}: " in message and problem in message
    assert "No source of the day is landed" in messages["raw_profiles" if source != "profiles" else "raw_events"]
    assert _lake_files(lake) == before  # this day and the later one, every source and table: byte for byte
    assert not result.get_asset_materialization_events()


def test_a_faulty_file_on_a_new_day_leaves_no_half_written_partition(processed):
    job, lake, days, instance = processed
    new_day = days[2]
    [path] = (lake.landing / "transactions" / new_day.isoformat()).glob("*.csv")
    backup = path.with_name(".backup")
    shutil.copy2(path, backup)
    try:
        _rename_amount(path)
        result = _run(job, new_day, instance)
    finally:
        shutil.move(backup, path)
    assert not result.success
    messages = _failure_messages(result)
    assert set(messages) == {f"raw_{s}" for s in PMAP.sources}
    assert all(f"{path}: CSV header lacks 'amount'" in m for m in messages.values())
    assert [p for p in (lake.root / "lake").rglob("*") if f"ds={new_day}" in p.as_posix()] == []
    assert not any(p.name.startswith(".") for p in (lake.root / "lake").rglob("*"))  # no temporary file left
