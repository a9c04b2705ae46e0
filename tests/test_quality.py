"""The data-quality layer (assets/quality/): GX 1.x suites, exact failing rows, column verdicts, Data Docs.

Great Expectations is imported once for the module (a few seconds); every test skips where it is not
installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from assets.quality.data_docs import build_data_docs
from assets.quality.outcome import QualityError
from assets.quality.suites import SuiteError, load_suite, load_suites, suite_from_dict, suite_path, write_suite
from assets.quality.typed_batch import day_parameters, typed_frame
from assets.quality.validation import validate_batch

ROOT = Path(__file__).resolve().parent.parent
DS = date(2026, 10, 1)
PARAMS = day_parameters(DS, max_clock_skew_minutes=5)  # latest_valid_time 2026-10-02T00:05:00+00:00


@pytest.fixture(scope="module")
def gx():
    return pytest.importorskip("great_expectations")


@pytest.fixture(scope="module")
def suites(gx):
    return load_suites()


def _strings(**columns) -> pa.Table:
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


def _indices(outcome) -> dict[str, list[int]]:
    return {reason: rows.tolist() for reason, rows in outcome.row_reasons.items() if len(rows)}


# --- the batches with known defects ------------------------------------------------------------------


def _events(n_clean_tail: int = 0) -> pa.Table:
    rows = [
        # event_id, user_id, event_type, occurred_at, channel, properties
        ("e0", "u0", "click", "2026-10-01T10:00:00Z", "app", '{"feature": "budget_tool"}'),  # clean
        ("e1", "  ", "page_view", "2026-10-01T12:00:00+02:00", "web", "{}"),  # blank user
        (None, "u2", "tap", "not-a-date", "app", "{}"),  # 3 reasons
        ("e3", "u3", None, "2026-10-09T00:00:00Z", "app", "{"),  # future, no type
        ("e4", None, "search", "2026-10-01T10:00:00", "app", None),  # no offset
        ("", "u5", "click", "2026-10-01 23:59:00-05:00", "app", "{}"),  # future by offset
        ("e6", "u6", "conversion", "2026-10-02T00:05:00Z", "app", "{}"),  # at the bound: ok
        ("e7", "u7", "pageview", "2026-10-01T10:00:00.123456+05:30", None, "{}"),  # unknown type
    ]
    rows += [
        (f"e{i}", f"u{i}", "session_start", "2026-10-01T08:00:00Z", "app", "{}") for i in range(8, 8 + n_clean_tail)
    ]
    names = ["event_id", "user_id", "event_type", "occurred_at", "channel", "properties"]
    table = _strings(**{name: [r[k] for r in rows] for k, name in enumerate(names)})
    for name in ["session_id", "campaign_id", "touchpoint_id"]:
        table = table.append_column(
            name, pa.array(["s"] * len(rows) if name == "session_id" else [None] * len(rows), pa.string())
        )
    return table


EVENT_FAILURES = {
    "missing_key": [2, 5],
    "missing_user_id": [1, 4],
    "bad_timestamp": [2, 4],
    "future_timestamp": [3, 5],
    "unknown_event_type": [2, 3, 7],
}


def test_events_exact_failing_rows_per_reason(suites):
    suite = suites["events"]
    frame = typed_frame(_events(), "events", suite.columns)
    outcome = validate_batch(frame, suite, "events 2026-10-01", parameters=PARAMS)

    assert _indices(outcome) == EVENT_FAILURES
    per_rule = {f.rule.check_name: f.indices.tolist() for f in outcome.row_failures}
    assert per_rule["event_type__not_be_null"] == [3]
    assert per_rule["event_type__be_in_set"] == [2, 7]
    assert outcome.reasons_per_row() == [
        [],
        ["missing_user_id"],
        ["missing_key", "bad_timestamp", "unknown_event_type"],
        ["future_timestamp", "unknown_event_type"],
        ["missing_user_id", "bad_timestamp"],
        ["missing_key", "future_timestamp"],
        [],
        ["unknown_event_type"],
    ]
    failing = outcome.failing_rows()
    assert failing.column("_row").to_pylist() == [1, 2, 3, 4, 5, 7]
    assert failing.column("reasons").to_pylist()[1] == ["missing_key", "bad_timestamp", "unknown_event_type"]


def test_by_column_split_gives_the_same_outcome_as_one_run(suites):
    suite = suites["events"]
    frame = typed_frame(_events(), "events", suite.columns)
    split = validate_batch(frame, suite, "split", parameters=PARAMS)
    whole = validate_batch(frame, suite, "whole", parameters=PARAMS, by_column=False)
    assert _indices(split) == _indices(whole)
    assert split.column_status == whole.column_status
    assert split.checks == whole.checks
    assert [r.expectation_config.id for r in split.gx_result.results] == [r.id for r in suite.rules]


def test_transactions_amounts_currencies_and_types(suites):
    suite = suites["transactions"]
    raw = _strings(
        txn_id=["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"],
        user_id=["u"] * 9,
        occurred_at=["2026-10-01T09:00:00Z"] * 9,
        amount=["12.50", "-5", "0", "abc", "inf", "1000000", "1000000.01", None, " 7 "],
        currency=["EUR", "USD", "GBP", "EUR", "XXX", "eur", None, "EUR", "GBP"],
        txn_type=[
            "card_payment",
            "deposit",
            "transfer_in",
            "transfer_out",
            "deposit",
            "refund",
            "deposit",
            None,
            "deposit",
        ],
        merchant_category=["grocery", None, None, None, None, None, None, None, None],
        status=["completed"] * 9,
    )
    outcome = validate_batch(typed_frame(raw, "transactions", suite.columns), suite, "txns", parameters=PARAMS)
    assert _indices(outcome) == {
        "bad_amount": [3, 4, 7],
        "non_positive_amount": [1, 2],
        "absurd_amount": [6],
        "unknown_currency": [4, 5, 6],
        "unknown_txn_type": [5, 7],
    }
    assert {"amount__be_between__non_positive_amount", "amount__be_between__absurd_amount"} <= set(outcome.checks)
    # merchant_category is expected only where txn_type is card_payment (a row condition): one, present
    merchant = next(c for c in outcome.column_status if c.column == "merchant_category")
    assert merchant.success and merchant.observed_value == 1.0


def test_profiles_birth_years_timestamps_and_consent(suites):
    suite = suites["profiles"]
    raw = _strings(
        user_id=["p0", "p1", "p2", "p3", "p4", "p5", None],
        updated_at=["2026-10-01T08:00:00Z"] * 5 + ["2026-11-01T00:00:00Z", "2026-10-01T08:00:00Z"],
        signup_at=[
            "2025-01-01T00:00:00Z",
            "2025-01-01",
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:00Z",
        ],
        country=["DE", "FR", None, "NL", "ES", "GB", "IE"],
        birth_year=["1985", " 1990 ", "19x5", "1850", "2027", None, "1970"],
        plan=["basic", "plus", "premium", "basic", "basic", "gold", "basic"],
        consent_personalization=["true", "TRUE", "false", "yes", "true", "false", "true"],
        consent_marketing=["false"] * 7,
        email=["x@example.com"] * 7,
        phone=["1"] * 7,
        full_name=["X"] * 7,
    )
    frame = typed_frame(raw, "profiles", suite.columns)
    assert "email" not in frame.columns  # only what the suite reads: no PII column
    outcome = validate_batch(frame, suite, "profiles", parameters=PARAMS)
    assert _indices(outcome) == {
        "missing_user_id": [6],
        "bad_timestamp": [1],
        "future_timestamp": [5],
        "bad_birth_year": [2, 3, 4],  # not a number; before 1900; after the year of ds
    }
    status = {c.check_name: c for c in outcome.column_status}
    mean = status["birth_year__mean_to_be_between"]
    assert mean.success and mean.observed_value == pytest.approx((1985 + 1990 + 1850 + 2027 + 1970) / 5)
    assert status["plan__be_in_set"].status == "withheld"  # 1 in 7 unknown, mostly 0.99, critical
    assert status["consent_personalization__be_in_set"].status == "withheld"  # "yes"
    assert status["country__not_be_null"].status == "warned"  # a warning: flagged, not withheld


def test_column_expectation_fails_and_withholds_with_observed_value(suites):
    suite = suites["events"]
    table = _events(n_clean_tail=92)  # 100 rows
    channel = [None if i % 2 else "app" for i in range(table.num_rows)]  # 50% nulls
    table = table.set_column(table.column_names.index("channel"), "channel", pa.array(channel, pa.string()))
    outcome = validate_batch(typed_frame(table, "events", suite.columns), suite, "half", parameters=PARAMS)

    channel_status = next(c for c in outcome.column_status if c.column == "channel")
    assert channel_status.expectation_type == "expect_column_values_to_not_be_null"
    assert (channel_status.success, channel_status.status, channel_status.severity) == (False, "withheld", "critical")
    assert channel_status.observed_value == 0.5 and channel_status.unexpected_percent == 50.0
    assert channel_status.mostly == 0.95
    assert outcome.severity["column_withheld"] == ["channel__not_be_null"]
    assert outcome.severity["max_failed_severity"] == "critical"
    assert _indices(outcome) == EVENT_FAILURES  # a column verdict refuses no row
    check = outcome.checks["channel__not_be_null"]
    assert check["status"] == "withheld" and check["unexpected_count"] == 50 and check["mostly"] == 0.95
    json.dumps(outcome.checks)  # asset-check metadata must be plain JSON


def test_row_rule_mostly_decides_the_check_not_the_rows(suites):
    suite = suites["events"]
    outcome = validate_batch(
        typed_frame(_events(n_clean_tail=292), "events", suite.columns), suite, "300 rows", parameters=PARAMS
    )
    assert _indices(outcome) == EVENT_FAILURES  # every unexpected row is refused ...
    check = outcome.checks["user_id__not_be_null"]
    assert check["success"] and check["mostly"] == 0.99 and check["unexpected_count"] == 2  # ... 2 in 300 pass
    assert "user_id__not_be_null" not in outcome.severity["row_critical_failed"]


def test_check_summaries_carry_counts_and_samples(suites):
    suite = suites["events"]
    outcome = validate_batch(typed_frame(_events(), "events", suite.columns), suite, "s", parameters=PARAMS)
    check = outcome.checks["event_type__be_in_set"]
    assert check["reason"] == "unknown_event_type" and check["decides"] == "row"
    assert check["unexpected_count"] == 2 and check["element_count"] == 8 and check["missing_count"] == 1
    assert check["sample_unexpected"] == ["tap", "pageview"]
    assert outcome.checks["occurred_at__be_between"]["sample_unexpected"] == [
        "2026-10-09T00:00:00+00:00",
        "2026-10-02T04:59:00+00:00",
    ]
    assert set(outcome.checks) == {r.check_name for r in suite.rules}
    # the full index lists live in row_failures only, so Data Docs stay small
    assert all("unexpected_index_list" not in r.result for r in outcome.gx_result.results)


def test_arrow_input_and_non_range_index_use_positions(suites):
    suite = suites["events"]
    frame = typed_frame(_events(), "events", suite.columns)
    from_arrow = validate_batch(pa.Table.from_pandas(frame, preserve_index=False), suite, "a", parameters=PARAMS)
    shuffled_index = frame.set_axis(np.arange(100, 100 + len(frame))[::-1], axis=0)
    from_odd_index = validate_batch(shuffled_index, suite, "b", parameters=PARAMS)
    assert _indices(from_arrow) == _indices(from_odd_index) == EVENT_FAILURES


def test_validation_refuses_what_it_cannot_judge(suites):
    suite = suites["events"]
    frame = typed_frame(_events(), "events", suite.columns)
    with pytest.raises(QualityError, match="latest_valid_time"):
        validate_batch(frame, suite, "x")
    with pytest.raises(QualityError, match="lacks column.*channel"):
        validate_batch(frame.drop(columns=["channel"]), suite, "x", parameters=PARAMS)
    naive = frame.assign(occurred_at=frame["occurred_at"].dt.tz_localize(None))
    with pytest.raises(QualityError, match="time-zone aware"):
        validate_batch(naive, suite, "x", parameters=PARAMS)


# --- the suite files ---------------------------------------------------------------------------------


def test_suite_files_are_gx_json_and_round_trip(gx, suites, tmp_path):
    for source, suite in suites.items():
        on_disk = json.loads(suite_path(source).read_text())
        assert suite.to_json_dict() == on_disk  # the file is exactly GX's own serialization
        assert gx.ExpectationSuite(**on_disk).to_json_dict() == on_disk  # and GX reads it as it is
        copy = write_suite(suite, tmp_path / f"{source}.json")
        assert load_suite(copy).to_json_dict() == on_disk
        assert suite.row_rules and suite.column_rules
        assert all(rule.reason for rule in suite.row_rules)
        assert all(rule.severity in ("critical", "warning") for rule in suite.rules)
        assert "latest_valid_time" in suite.parameters
    assert set(suites["transactions"].reasons) == {
        "missing_key",
        "missing_user_id",
        "bad_timestamp",
        "future_timestamp",
        "bad_amount",
        "non_positive_amount",
        "absurd_amount",
        "unknown_currency",
        "unknown_txn_type",
    }


def _one_expectation(expectation: dict) -> dict:
    return {"name": "t", "expectations": [expectation], "meta": {}}


@pytest.mark.parametrize(
    "expectation, message",
    [
        ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "meta": {}}, "meta.decides"),
        (
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "meta": {"decides": "row"}},
            "needs meta.reason",
        ),
        (
            {
                "type": "expect_column_mean_to_be_between",
                "kwargs": {"column": "a", "min_value": 1},
                "meta": {"decides": "row", "reason": "bad_a"},
            },
            "not a row-wise",
        ),
        (
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "a"},
                "meta": {"decides": "column", "severity": "warning"},
            },
            'top-level "severity"',
        ),
        (
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "a"},
                "meta": {"decides": "column"},
                "severity": "info",
            },
            "severity 'info'",
        ),
        (
            {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "a"}, "meta": {"decides": "column"}},
            "GX refuses it.*value_set",
        ),
        (
            {"type": "expect_columns_to_be_nice", "kwargs": {"column": "a"}, "meta": {"decides": "column"}},
            "GX refuses it",
        ),
    ],
)
def test_suite_errors_name_the_expectation(gx, tmp_path, expectation, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_one_expectation(expectation)))
    with pytest.raises(SuiteError, match=message) as err:
        load_suite(path)
    assert "bad.json: expectations[0]" in str(err.value)


def test_expectations_without_id_get_stable_ids(gx):
    document = _one_expectation(
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "a"},
            "meta": {"decides": "row", "reason": "missing_a"},
        }
    )
    first, second = suite_from_dict(document), suite_from_dict(document)
    assert first.rules[0].id == second.rules[0].id


# --- Data Docs and import cost -----------------------------------------------------------------------


def test_data_docs_index_is_written(suites, tmp_path):
    suite = suites["events"]
    outcome = validate_batch(
        typed_frame(_events(), "events", suite.columns), suite, "events_2026-10-01", parameters=PARAMS
    )
    site = tmp_path / "reports" / "data_docs"
    index = build_data_docs([outcome], site, suites=[suite])
    assert index == site / "index.html" and index.is_file()
    assert "events_2026-10-01" in index.read_text()
    pages = list((site / "validations" / "events").rglob("*.html"))
    assert len(pages) == 1
    page = pages[0].read_text()
    assert "pageview" in page and "Data asset: events" in page  # an unexpected value; the asset is named
    assert (site / "expectations" / "events.html").is_file()
    # the process-wide validation context still works after a Data Docs context was made
    again = validate_batch(typed_frame(_events(), "events", suite.columns), suite, "x", parameters=PARAMS)
    assert _indices(again) == EVENT_FAILURES


def test_importing_the_module_does_not_import_great_expectations():
    code = (
        "import sys; import assets.quality.suites, assets.quality.typed_batch, assets.quality.outcome, "
        "assets.quality.validation, assets.quality.data_docs, assets.lineage; "
        "print('great_expectations' in sys.modules, 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_loading_the_definitions_does_not_import_great_expectations():
    """GX (seconds to import) is imported by the first suite that runs, once per process: not by loading
    the code location, which the UI, the daemon and every run process do."""
    code = "import sys; import pipelines.definitions; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
