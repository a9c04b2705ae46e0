"""What a materialization and a suite check tell Dagster: rows of aggregate tables, but of a table with
a user id, a PII column or a raw record only a profile of its columns; no unexpected value of an id
or PII column in check metadata, saved validations or Data Docs (DESIGN rule 7)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pyarrow as pa

from assets.privacy import holds_personal_data, is_private
from pipelines.metadata import column_profile, markdown_preview, table_metadata

USERS = [f"u{n:07d}" for n in range(1, 9)]


def test_an_aggregate_table_shows_its_first_rows():
    table = pa.table({"segment_id": ["savers", "new_users"], "size": [120, 45]})
    assert markdown_preview(table) == "| segment_id | size |\n|---|---|\n| savers | 120 |\n| new_users | 45 |"


def test_a_per_user_table_shows_a_profile_of_its_columns_and_no_user_id():
    table = pa.table(
        {
            "user_id": USERS,
            "campaign_id": ["c1"] * 8,
            "arm": ["treatment"] * 6 + ["holdout"] * 2,
            "as_of": [date(2026, 10, 1)] * 7 + [date(2026, 10, 3)],
            "score": [0.5, 1.0, 2.5, None, 3, 1, 1, 1],
            "reasons": [["a"], [], None, ["b", "c"], [], [], [], []],
        }
    )
    text = markdown_preview(table)
    assert not any(u in text for u in USERS)
    lines = {line.split(" | ")[0].removeprefix("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert lines["user_id"] == "| user_id | string | 8 | 8 |  |  |  |"
    assert lines["campaign_id"] == "| campaign_id | string | 8 | 1 |  |  |  |"  # an id: no values
    assert lines["arm"] == "| arm | string | 8 | 2 |  |  | treatment: 6, holdout: 2 |"
    assert lines["as_of"] == "| as_of | date32[day] | 8 | 2 | 2026-10-01 | 2026-10-03 |  |"
    assert lines["score"] == "| score | double | 7 | 4 | 0.5 | 3.0 |  |"
    assert lines["reasons"].startswith("| reasons | list<item: string> | 7 |")
    assert "8 rows" in text


def test_pii_columns_come_from_the_map_and_raw_records_count_as_personal():
    table = pa.table({"country": ["DE", "DE"], "mail": ["a@example.org", "a@example.org"]})
    assert "a@example.org" in markdown_preview(table)  # not named as PII: an ordinary column
    hidden = markdown_preview(table, pii=["mail"])
    assert "a@example.org" not in hidden and "DE: 2" in hidden
    quarantine = pa.table({"source": ["events"], "payload": ['{"user_id": "u0000001"}']})
    assert "u0000001" not in markdown_preview(quarantine)
    assert holds_personal_data(["_raw_text", "x"]) and not holds_personal_data(["segment_id", "size"])
    assert is_private("event_id") and is_private("email", ["email"]) and not is_private("country")


def test_a_high_cardinality_column_shows_no_values():
    table = pa.table({"user_id": USERS * 2, "city": [f"city {n}" for n in range(16)]})
    assert "city 1" not in markdown_preview(table)


def test_table_metadata_carries_schema_path_and_the_private_preview(tmp_path: Path):
    table = pa.table({"user_id": USERS[:2], "email": ["x@example.org", "y@example.org"]})
    metadata = table_metadata(table, tmp_path / "part-0.parquet", pii=("email",), rows_in=2)
    assert metadata["dagster/row_count"] == 2 and metadata["rows_in"] == 2
    assert [c.name for c in metadata["dagster/column_schema"].columns] == ["user_id", "email"]
    assert "x@example.org" not in metadata["preview"].value and USERS[0] not in metadata["preview"].value


# --- suite results: no unexpected value of an id or PII column ---------------------------------------


def _suite():
    from assets.quality.suites import suite_from_dict

    return suite_from_dict(
        {
            "name": "masking",
            "meta": {},
            "expectations": [
                {
                    "type": "expect_column_values_to_match_regex",
                    "kwargs": {"column": "user_id", "regex": "^u[0-9]{7}$"},
                    "meta": {"decides": "row", "reason": "bad_user_id"},
                },
                {
                    "type": "expect_column_values_to_match_regex",
                    "kwargs": {"column": "email", "regex": "@example[.]org$"},
                    "meta": {"decides": "row", "reason": "bad_email"},
                },
                {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": "plan", "value_set": ["free"]},
                    "meta": {"decides": "row", "reason": "unknown_plan"},
                },
            ],
        }
    )


def test_suite_results_mask_the_unexpected_values_of_id_and_pii_columns(tmp_path: Path):
    from assets.quality.data_docs import build_data_docs
    from assets.quality.validation import load_validations, save_validation, validate_batch
    from pipelines.layers.quality import _expectations_table

    table = pa.table(
        {
            "user_id": ["u0000001", "secret-id-77"],
            "email": ["a@example.org", "leak@mail.test"],
            "plan": ["free", "platinum"],
        }
    )
    outcome = validate_batch(table, _suite(), "masking", pii=["email"])
    assert {reason: rows.tolist() for reason, rows in outcome.row_reasons.items()} == {
        "bad_user_id": [1],
        "bad_email": [1],
        "unknown_plan": [1],
    }  # the rows are still known exactly
    checks = {s["column"]: s for s in outcome.checks.values()}
    assert checks["plan"]["sample_unexpected"] == ["platinum"]
    assert checks["user_id"]["sample_unexpected"] == [] and checks["user_id"]["samples_masked"]
    assert checks["email"]["sample_unexpected"] == [] and checks["email"]["samples_masked"]
    assert _expectations_table(outcome.checks).count("(masked)") == 2
    saved = save_validation(outcome, tmp_path / "validations" / "masking.json")
    index = build_data_docs(load_validations([saved]), tmp_path / "docs")
    pages = [saved, index, *(tmp_path / "docs").rglob("*.html")]
    text = "\n".join(p.read_text() for p in pages) + json.dumps(outcome.checks)
    assert "platinum" in text  # an ordinary value is still shown
    assert "secret-id-77" not in text and "leak@mail.test" not in text


def test_data_docs_strip_the_values_of_private_columns_from_older_results(tmp_path: Path):
    from assets.quality.data_docs import build_data_docs
    from assets.quality.validation import validate_batch

    table = pa.table(
        {"user_id": ["u0000001", "u0000002"], "email": ["a@example.org", "leak@mail.test"], "plan": ["free", "free"]}
    )
    outcome = validate_batch(table, _suite(), "older")  # the map's PII not given: email values kept
    assert "leak@mail.test" in json.dumps(outcome.gx_result.to_json_dict())
    build_data_docs([outcome], tmp_path / "docs", pii=["email"])
    pages = "\n".join(p.read_text() for p in (tmp_path / "docs").rglob("*.html"))
    assert "older" in pages and "leak@mail.test" not in pages


def test_distinct_counts_leave_out_nulls_and_agree_with_a_set():
    values = [f"u{n % 37}" if n % 5 else None for n in range(1000)]
    days = [date(2026, 10, 1 + n % 9) for n in range(1000)]
    table = pa.table({"user_id": values, "day": days, "n": [n % 11 if n % 3 else None for n in range(1000)]})
    lines = {line.split(" | ")[0].removeprefix("| "): line.split(" | ") for line in column_profile(table).splitlines()}
    assert lines["user_id"][2:4] == [f"{sum(v is not None for v in values):,}", str(len(set(values) - {None}))]
    assert lines["day"][3] == "9" and lines["n"][3] == "11"
