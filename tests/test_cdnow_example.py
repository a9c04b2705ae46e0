"""`pyramid example cdnow` end to end on its first days, checked against a plain-Python reading of the raw text.

The oracle reads CDNOW_master.txt line by line (no pyarrow, no DuckDB, none of the example's code): every line
is a purchase (the map accepts the $0.00 ones: zero_amounts), a customer is known from their first line.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.examples.cdnow.example import dataset_path, read_dataset, to_csv

ROOT = Path(__file__).resolve().parent.parent
DAYS = 3
FIRST = date(1997, 1, 1)
LAST = FIRST + timedelta(days=DAYS - 1)


def purchases() -> list[tuple[str, date, Decimal]]:
    """(customer, date, dollars) of every line of the raw file."""
    rows = []
    with open(dataset_path(), encoding="ascii") as text:
        next(text)
        for line in text:
            customer, day, _cds, dollars = line.split()
            rows.append((customer, date(int(day[:4]), int(day[4:6]), int(day[6:])), Decimal(dollars)))
    return rows


def expected(as_of: date, window: int) -> dict[str, tuple[int, Decimal, int]]:
    """Per customer known on `as_of`: (orders in the `window` days ending on it, their dollars, days since first
    seen)."""
    first: dict[str, date] = {}
    orders: dict[str, int] = defaultdict(int)
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for customer, day, dollars in purchases():
        if day > as_of:
            continue
        first[customer] = min(first.get(customer, day), day)
        if day > as_of - timedelta(days=window):
            orders[customer] += 1
            revenue[customer] += dollars
    return {c: (orders[c], revenue[c], (as_of - first[c]).days) for c in first}


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cdnow") / "program"
    command = [sys.executable, "-m", "pipelines.cli", "example", "cdnow", str(folder), "--days", str(DAYS)]
    env = {"PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(folder.parent / ".dagster"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(command, cwd=folder.parent, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (folder.parent / "stdout.txt").write_text(done.stdout)
    return folder


def _lake(program: Path, table: str, where: str = "TRUE") -> list[dict]:
    path = program / "data" / "lake" / "*" / table / "*" / "*.parquet"
    con = duckdb.connect()
    try:
        frame = con.sql(f"SELECT * FROM read_parquet('{path}', hive_partitioning = true) WHERE {where}")
        return [dict(zip(frame.columns, row)) for row in frame.fetchall()]
    finally:
        con.close()


def test_the_conversion_keeps_every_value(tmp_path):
    target = tmp_path / "cdnow.csv"
    assert to_csv(dataset_path(), target) == 69_659
    lines = target.read_text().splitlines()
    assert lines[:4] == [
        "line,customer_id,date,number_of_cds,dollar_value",
        "2,00001,1997-01-01,1,11.77",
        "3,00002,1997-01-12,1,12.00",
        "4,00002,1997-01-12,5,77.00",
    ]
    assert lines[1381:1383] == ["1382,00398,1998-05-18,1,12.99", "1383,00398,1998-05-18,1,12.99"]  # two purchases
    table = read_dataset(dataset_path())
    assert len(set(table.column("customer_id").to_pylist())) == 23_570


def test_per_user_orders_revenue_and_tenure_match_the_raw_file(program):
    """Over the history run (its window: every day since 1997-01-01); a 7-day window that reaches before the
    start of history is not covered, so its sums are NULL (never a number from days that were not run)."""
    rows = _lake(program, "user_features", f"as_of = DATE '{LAST}'")
    found = {r["user_id"]: (r["orders_history"], r["revenue_history"], r["tenure_days"]) for r in rows}
    assert {r["orders_7d"] for r in rows} == {None}
    truth = expected(LAST, DAYS)
    assert len(truth) > 500
    assert set(found) == set(truth)
    for customer, (orders, revenue, tenure) in truth.items():
        assert found[customer][0] == orders, customer
        assert found[customer][1] == pytest.approx(float(revenue), abs=1e-9), customer
        assert found[customer][2] == tenure, customer


def test_aa_goals_are_checks_whose_intervals_cover_zero(program):
    rows = _lake(program, "goal_metrics", f"ds = DATE '{LAST}' AND \"window\" = 'to_date'")
    assert {r["goal_id"] for r in rows} == {"new_customer_purchases_aa", "spend_aa"}
    for row in rows:
        assert row["status"] in {"aa_ok", "aa_failed", "no_data", "srm_fail", "inconclusive"}, row["status"]
        if row["ci_low"] is not None and row["ci_high"] is not None:
            covers = row["ci_low"] <= 0 <= row["ci_high"]
            assert row["status"] == ("aa_ok" if covers else "aa_failed")
    reported = (program.parent / "stdout.txt").read_text()
    assert "A/A check" in reported
    assert not list((program / "data" / "lake").glob("touchpoints/*/ds=*/part-0.parquet"))  # nothing exported
