"""Sources of any shape: the same transactions from CSV (another delimiter, gzip, no header), JSON lines
and Parquet, under other column names, with expressions, constants and naive Berlin times, land as the
canonical load does; naive times cross the 2026-10-25 change of clocks right; generated keys are the
documented hash; broken declarations fail with their exact message."""

import gzip
import hashlib
import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from assets import accounting, actionable
from assets.lake import Lake, connect
from assets.landing import LandingError, file_day, landed_days, landing_files
from assets.pyramid_map import MapError, Source, load_map
from assets.raw import absent_columns, check_file_columns, land, raw_schema
from assets.source_mapping import naive_to_utc_sql

DS = date(2026, 10, 25)  # Europe/Berlin goes from CEST (+02:00) to CET (+01:00) at 03:00 local
KNOWN_USERS = pa.table({"user_id": ["u1", "u2", "u3"]})
# (txn_id, user_id, Berlin wall time, UTC instant, cents, txn_type, merchant_category)
ROWS = [
    ("t1", "u1", "2026-10-24 12:00:00", "2026-10-24T10:00:00Z", 1250, "deposit", "salary"),
    ("t2", "u2", "2026-10-25 01:30:00", "2026-10-24T23:30:00Z", 4025, "card_payment", "groceries"),
    ("t3", "u1", "2026-10-25 03:30:00", "2026-10-25T02:30:00Z", 700, "card_payment", "travel"),
    ("t4", "u3", "2026-10-25", "2026-10-24T22:00:00Z", 10000, "transfer_in", None),  # a date: midnight in Berlin
    ("t5", "u2", "2026-10-25 12:00:00.250000", "2026-10-25T11:00:00.250000Z", 375, "card_payment", "groceries"),
]
CANONICAL_HEADER = "txn_id,user_id,occurred_at,amount,currency,txn_type,merchant_category,status"
OWN_NAMES = ["id", "customer", "booked_at", "amount_cents", "kind", "category"]
OWN_MAPPING = {
    "columns": {"id": "txn_id", "customer": "user_id", "booked_at": "occurred_at", "kind": "txn_type"},
    "expressions": {"amount": "cast(amount_cents as double) / 100", "merchant_category": "lower(category)"},
    "constants": {"currency": "EUR", "status": "completed"},
    "timezone": "Europe/Berlin",
}


@pytest.fixture(scope="module")
def pyramid():
    return load_map()


def _canonical_csv() -> str:
    lines = [CANONICAL_HEADER]
    for txn, user, _, instant, cents, kind, category in ROWS:
        lines.append(f"{txn},{user},{instant},{cents / 100},EUR,{kind},{category or ''},completed")
    return "\n".join(lines) + "\n"


def _own_rows() -> list[list]:
    return [
        [txn, user, wall, cents, kind, category and category.upper()]
        for txn, user, wall, _, cents, kind, category in ROWS
    ]


def _write(tmp_path, relative: str, data: bytes) -> None:
    path = tmp_path / relative.format(ds=DS)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _csv_variant(tmp_path) -> Source:
    text = (
        ";".join(OWN_NAMES)
        + "\n"
        + "".join(";".join("" if v is None else str(v) for v in r) + "\n" for r in _own_rows())
    )
    _write(tmp_path, "landing/csv/{ds}/tx.csv.gz", gzip.compress(text.encode()))
    return Source(
        "transactions", "landing/csv/{ds}/*.csv.gz", "csv", csv={"delimiter": ";"}, compression="gzip", **OWN_MAPPING
    )


def _headerless_variant(tmp_path) -> Source:
    text = "".join(",".join("" if v is None else str(v) for v in r) + "\n" for r in _own_rows())
    _write(tmp_path, "landing/bare/{ds}/tx.csv", text.encode())
    return Source(
        "transactions", "landing/bare/{ds}/*.csv", "csv", csv={"header": False, "names": OWN_NAMES}, **OWN_MAPPING
    )


def _jsonl_variant(tmp_path) -> Source:
    lines = [json.dumps(dict(zip(OWN_NAMES, r))) for r in _own_rows()]
    _write(tmp_path, "landing/jsonl/{ds}/tx.jsonl", ("\n".join(lines) + "\n").encode())
    return Source("transactions", "landing/jsonl/{ds}/*.jsonl", "jsonl", **OWN_MAPPING)


def _jsonl_gzip_variant(tmp_path) -> Source:
    lines = [json.dumps(dict(zip(OWN_NAMES, r))) for r in _own_rows()]
    _write(tmp_path, "landing/jsonl_gz/{ds}/tx.jsonl.gz", gzip.compress(("\n".join(lines) + "\n").encode()))
    return Source("transactions", "landing/jsonl_gz/{ds}/*.jsonl.gz", "jsonl", compression="gzip", **OWN_MAPPING)


def _parquet_variant(tmp_path) -> Source:
    rows = _own_rows()
    walls = [datetime.fromisoformat(r[2]) for r in rows]  # naive: wall times in Berlin
    table = pa.table(
        {
            "id": [r[0] for r in rows],
            "customer": [r[1] for r in rows],
            "booked_at": pa.array(walls, pa.timestamp("us")),
            "amount_cents": pa.array([r[3] for r in rows], pa.int64()),
            "kind": [r[4] for r in rows],
            "category": [r[5] for r in rows],
        }
    )
    path = tmp_path / f"landing/parquet/{DS}/tx.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    return Source("transactions", "landing/parquet/{ds}/*.parquet", "parquet", **OWN_MAPPING)


def _utc_parquet_variant(tmp_path) -> Source:
    """Canonical names, UTC-aware timestamps, a DOUBLE amount: no mapping at all."""
    instants = [datetime.fromisoformat(r[3].replace("Z", "+00:00")) for r in ROWS]
    table = pa.table(
        {
            "txn_id": [r[0] for r in ROWS],
            "user_id": [r[1] for r in ROWS],
            "occurred_at": pa.array(instants, pa.timestamp("us", tz="UTC")),
            "amount": [r[4] / 100 for r in ROWS],
            "currency": ["EUR"] * len(ROWS),
            "txn_type": [r[5] for r in ROWS],
            "merchant_category": [r[6] for r in ROWS],
            "status": ["completed"] * len(ROWS),
        }
    )
    path = tmp_path / f"landing/utc/{DS}/tx.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    return Source("transactions", "landing/utc/{ds}/*.parquet", "parquet")


VARIANTS = {
    "csv ; gzip": _csv_variant,
    "csv without header": _headerless_variant,
    "jsonl": _jsonl_variant,
    "jsonl gzip": _jsonl_gzip_variant,
    "parquet naive": _parquet_variant,
    "parquet utc": _utc_parquet_variant,
}


def _canonical(table: pa.Table) -> pa.Table:
    return table.drop_columns(["_source_file", "_source_line"])


def test_every_shape_lands_as_the_canonical_load(tmp_path, pyramid):
    _write(tmp_path, "landing/transactions/{ds}/tx.csv", _canonical_csv().encode())
    lake = Lake(tmp_path)
    expected = land(connect(), lake, pyramid.sources["transactions"], DS)
    assert expected.column("occurred_at").to_pylist() == [r[3] for r in ROWS]
    clean = actionable.clean_transactions(connect(), expected, DS, KNOWN_USERS, None, pyramid.actionable)
    assert clean.table.num_rows == len(ROWS) and clean.quarantine.num_rows == 0
    assert clean.table.column("occurred_at").to_pylist()[:2] == [
        datetime(2026, 10, 24, 10, tzinfo=UTC),
        datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
    ]
    for name, variant in VARIANTS.items():
        source = variant(tmp_path)
        landed = land(connect(), lake, source, DS)
        assert landed.schema == raw_schema("transactions"), name
        assert _canonical(landed).equals(_canonical(expected)), name
        assert landed.column("_source_line").to_pylist() == [1, 2, 3, 4, 5], name
        counted = accounting.landed_records(landing_files(lake, source, DS), source)  # the separate count
        assert list(counted.values()) == [len(ROWS)], name
        again = actionable.clean_transactions(connect(), landed, DS, KNOWN_USERS, None, pyramid.actionable)
        assert again.table.equals(clean.table), name
        assert again.quarantine.num_rows == 0, name


@pytest.mark.parametrize(
    ("wall", "instant"),
    [
        ("2026-10-24 12:00:00", "2026-10-24T10:00:00Z"),  # CEST, +02:00
        ("2026-10-25T01:59:59", "2026-10-24T23:59:59Z"),  # the last second before the repeated hour
        ("2026-10-25 02:30", "2026-10-25T01:30:00Z"),  # the repeated hour: its second occurrence (CET)
        ("2026-10-25 03:00:00", "2026-10-25T02:00:00Z"),  # CET, +01:00
        ("2026-10-25", "2026-10-24T22:00:00Z"),  # a date: midnight in Berlin, still CEST
        ("2026-10-26", "2026-10-25T23:00:00Z"),  # the next midnight: CET
        ("2026-03-29 02:30:00", "2026-03-29T01:30:00Z"),  # skipped when clocks go forward: the offset before
        ("2026-10-25T10:00:00+05:00", "2026-10-25T10:00:00+05:00"),  # an offset: left as it came
        ("2026-02-30 10:00:00", "2026-02-30 10:00:00"),  # no such day: left as it came (bad_timestamp)
        ("yesterday", "yesterday"),
    ],
)
def test_naive_berlin_time_is_the_right_utc_instant(wall, instant):
    sql = naive_to_utc_sql("v", "Europe/Berlin")
    assert connect().sql(f"SELECT {sql} FROM (SELECT ? AS v)", params=[wall]).fetchall() == [(instant,)]


def test_generated_key_is_the_documented_hash_and_duplicates_collapse(tmp_path, pyramid):
    rows = ["u1,2026-10-25T10:00:00Z,12.5,EUR,deposit,,completed", "u2,2026-10-25T11:00:00Z,3.75,EUR,card_payment,x,"]
    text = (
        "user_id,occurred_at,amount,currency,txn_type,merchant_category,status\n" + "\n".join([*rows, rows[0]]) + "\n"
    )
    _write(tmp_path, "landing/keyless/{ds}/tx.csv", text.encode())
    source = Source("transactions", "landing/keyless/{ds}/*.csv", "csv", generated_key=True)
    landed = land(connect(), Lake(tmp_path), source, DS)
    values = [[None if v == "" else v for v in row.split(",")] for row in [*rows, rows[0]]]
    independent = [hashlib.sha256(json.dumps(v, separators=(",", ":")).encode()).hexdigest() for v in values]
    assert landed.column("txn_id").to_pylist() == independent
    assert independent[0] == independent[2] != independent[1]
    clean = actionable.clean_transactions(connect(), landed, DS, KNOWN_USERS, None, pyramid.actionable)
    assert (clean.table.num_rows, clean.duplicates_removed, clean.quarantine.num_rows) == (2, 1, 0)


def test_optional_columns_absent_required_ones_refused(tmp_path):
    lake = Lake(tmp_path)
    header = "txn_id,user_id,occurred_at,amount,currency,txn_type"  # merchant_category is required, status is not
    _write(
        tmp_path,
        "landing/a/{ds}/tx.csv",
        f"{header},merchant_category\nt1,u1,2026-10-25T10:00:00Z,1.5,EUR,deposit,x\n".encode(),
    )
    source = Source("transactions", "landing/a/{ds}/*.csv", "csv")
    files = landing_files(lake, source, DS)
    assert absent_columns(source, files) == ["status"] == check_file_columns(connect(), files[0], source)
    assert land(connect(), lake, source, DS).column("status").to_pylist() == [None]
    _write(tmp_path, "landing/b/{ds}/tx.csv", f"{header}\nt1,u1,2026-10-25T10:00:00Z,1.5,EUR,deposit\n".encode())
    path = tmp_path / f"landing/b/{DS}/tx.csv"
    with pytest.raises(LandingError) as err:
        land(connect(), lake, Source("transactions", "landing/b/{ds}/*.csv", "csv"), DS)
    assert str(err.value) == (
        f"{path}: CSV header lacks 'merchant_category'; expected columns for source 'transactions': txn_id, user_id, "
        "occurred_at, amount, currency, txn_type, merchant_category, status; found: txn_id, user_id, occurred_at, "
        "amount, currency, txn_type"
    )


def test_missing_required_and_expression_columns_name_file_and_column(tmp_path):
    lake = Lake(tmp_path)
    source = _csv_variant(tmp_path)
    _write(tmp_path, "landing/csv/{ds}/tx.csv.gz", gzip.compress(b"id;client;booked_at;amount_cent;kind;category\n"))
    path = tmp_path / f"landing/csv/{DS}/tx.csv.gz"
    with pytest.raises(LandingError) as err:
        land(connect(), lake, source, DS)
    assert str(err.value) == (
        f"{path}: CSV header lacks 'customer' (canonical 'user_id'), 'amount_cents' (read by the expression of "
        "'amount'); expected columns for source 'transactions': id, customer, booked_at, kind, amount_cents, category; "
        "found: id, client, booked_at, amount_cent, kind, category; unexpected: 'client', 'amount_cent' (renamed "
        "upstream? map the source's name to the canonical one under `columns` of the source in pyramid.yaml, or ask "
        "the sender for the contract's names)"
    )
    with pytest.raises(LandingError) as again:
        check_file_columns(connect(), path, source)  # what `pyramid check` asks of each input
    assert str(again.value) == str(err.value)
    jsonl = _jsonl_variant(tmp_path)
    assert check_file_columns(connect(), tmp_path / f"landing/jsonl/{DS}/tx.jsonl", jsonl) == []
    _write(
        tmp_path,
        "landing/jsonl/{ds}/tx.jsonl",
        b'{"id": "t1", "customer": "u1", "booked_at": "2026-10-25", "cents": 5}\n',
    )
    with pytest.raises(LandingError) as err:
        land(connect(), lake, jsonl, DS)
    with pytest.raises(LandingError) as again:
        check_file_columns(connect(), tmp_path / f"landing/jsonl/{DS}/tx.jsonl", jsonl)
    assert str(again.value) == str(err.value)
    assert str(err.value) == (
        f"{tmp_path}/landing/jsonl/{DS}/tx.jsonl: no JSON record has 'kind' (canonical 'txn_type'), 'amount_cents' "
        "(read by the expression of 'amount'), 'category' (read by the expression of 'merchant_category'); expected "
        "columns for source 'transactions': id, customer, booked_at, kind, amount_cents, category; found: booked_at, "
        "cents, customer, id; unexpected: 'cents' (renamed upstream? map the source's name to the canonical one under "
        "`columns` of the source in pyramid.yaml, or ask the sender for the contract's names)"
    )


def test_paths_without_a_day_folder_take_the_day_from_the_file_name(tmp_path):
    lake = Lake(tmp_path)
    for name in ("tx_2026-10-24.csv", "tx_20261025.csv", "tx_2026_10_25_b.csv"):
        _write(tmp_path, f"exports/{name}", _canonical_csv().encode())
    source = Source("transactions", "exports/tx_*.csv", "csv")
    assert [p.name for p in landing_files(lake, source, DS)] == ["tx_20261025.csv", "tx_2026_10_25_b.csv"]
    assert landed_days(lake, source) == {date(2026, 10, 24), DS}
    assert file_day(tmp_path / "x_2026-13-01_2026-10-02.csv") == date(2026, 10, 2)
    in_name = Source("transactions", "exports/tx_{ds}.csv", "csv")  # {ds} in the file name
    assert [p.name for p in landing_files(lake, in_name, date(2026, 10, 24))] == ["tx_2026-10-24.csv"]
    assert landed_days(lake, in_name) == {date(2026, 10, 24)}
    _write(tmp_path, "landing/transactions/{ds}/tx.csv", _canonical_csv().encode())  # {ds} a folder
    assert landed_days(lake, Source("transactions", "landing/transactions/{ds}/*.csv", "csv")) == {DS}
    _write(tmp_path, "exports/tx_latest.csv", b"")
    with pytest.raises(LandingError) as err:
        landing_files(lake, source, DS)
    assert str(err.value) == (
        f"{tmp_path}/exports/tx_latest.csv: no day in the file name; source 'transactions' has a path without {{ds}} "
        "(exports/tx_*.csv), so each file's landing day is the first date in its name (YYYY-MM-DD, YYYY_MM_DD or "
        "YYYYMMDD). Rename the file, or split a history export by day with `pyramid import`"
    )


def _map_with(tmp_path, transactions: dict) -> tuple:
    """The sample map with `sources.transactions` replaced; (path, line of each key of the source)."""
    raw = yaml.safe_load(open(load_map().path).read())
    raw["sources"]["transactions"] = transactions
    text = yaml.safe_dump(raw, sort_keys=False)
    path = tmp_path / "pyramid.yaml"
    path.write_text(text)
    lines = text.splitlines()
    start = lines.index("  transactions:") + 1
    end = next(n for n in range(start, len(lines)) if not lines[n].startswith("    "))
    return path, {lines[n].strip().split(":")[0]: n + 1 for n in range(start, end)}


BASE = {"path": "landing/transactions/{ds}/*.csv", "format": "csv"}
BROKEN = {
    "bad time zone": (
        {"timezone": "Europe/Berln"},
        "timezone",
        "sources.transactions.timezone: unknown time zone 'Europe/Berln': expected an IANA name such as UTC or "
        "Europe/Berlin; did you mean 'Europe/Berlin'?",
    ),
    "misspelt key": (
        {"timezon": "UTC"},
        "timezon",
        "sources.transactions.timezon: unknown key; did you mean 'timezone'? known keys here: path, "
        "format, columns, expressions, constants, timezone, generated_key, csv, compression, required, volume",
    ),
    "misspelt canonical column": (
        {"constants": {"curency": "EUR"}},
        "curency",
        "sources.transactions.constants.curency: unknown canonical column 'curency'; did you mean 'currency'? "
        "transactions has: txn_id, user_id, occurred_at, amount, currency, txn_type, merchant_category, status",
    ),
    "unsafe expression": (
        {"expressions": {"amount": "read_csv('/etc/passwd')"}},
        "amount",
        "sources.transactions.expressions.amount: 'READ_CSV('/etc/passwd')' is not allowed (ReadCSV)",
    ),
    "second statement": (
        {"expressions": {"amount": "amount_cents / 100; drop table x"}},
        "amount",
        "sources.transactions.expressions.amount: must be a single expression (no ';' and no second statement)",
    ),
    "unknown column in an expression": (
        {"csv": {"header": False, "names": ["a", "b"]}, "expressions": {"amount": "cast(amount_cents as double)"}},
        "amount",
        "sources.transactions.expressions.amount: unknown column 'amount_cents'; the columns are: a, b",
    ),
    "key generated and mapped": (
        {"generated_key": True, "columns": {"id": "txn_id"}},
        "generated_key",
        "sources.transactions.generated_key: the key 'txn_id' is already mapped under `columns`",
    ),
    "csv without header nor names": (
        {"csv": {"header": False}},
        "csv",
        "sources.transactions.csv: names (the columns in order) are required without a header, and only then",
    ),
    "unknown format": (
        {"format": "xlsx"},
        "format",
        "sources.transactions.format: must be one of jsonl, csv, parquet",
    ),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_source_declarations(tmp_path, name):
    declared, key, message = BROKEN[name]
    path, lines = _map_with(tmp_path, {**BASE, **declared})
    with pytest.raises(MapError) as err:
        load_map(path)
    assert err.value.problems == [f"{path}:{lines[key]}: {message}"]


def test_pyramid_check_refuses_a_broken_source(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    path, lines = _map_with(tmp_path, {**BASE, "timezone": "Europe/Berln"})
    assert main(["--map", str(path), "check"]) == 2
    assert f"{path}:{lines['timezone']}: sources.transactions.timezone: unknown time zone 'Europe/Berln'" in " ".join(
        capsys.readouterr().err.split()
    )
