"""The map's domain rules (actionable.currencies, txn_types, event_types, zero_amounts) replace the suites' at load."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from assets.actionable import validate
from assets.pyramid_map import Actionable
from assets.quality.suites import SuiteError, load_suite, suite_path, with_kwargs

DS = date(2026, 10, 1)


@pytest.fixture(scope="module")
def transactions_suite():
    pytest.importorskip("great_expectations")
    return load_suite(suite_path("transactions"))


def _in_set(suite, column: str) -> list[str]:
    (rule,) = [r for r in suite.rules if r.column == column and r.type == "expect_column_values_to_be_in_set"]
    return list(rule.kwargs["value_set"])


IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"


def test_rules_default_to_the_suites_own():
    settings = Actionable(currencies=("EUR", "USD", "GBP"))
    assert settings.suite_changes("transactions") == {(IN_SET, "currency"): {"value_set": ["EUR", "USD", "GBP"]}}
    assert settings.suite_changes("events") == {}
    assert settings.suite_changes("profiles") == {}
    declared = Actionable(currencies=("USD",), txn_types=("purchase",), event_types=("view", "buy"), zero_amounts=True)
    assert declared.suite_changes("transactions") == {
        (IN_SET, "currency"): {"value_set": ["USD"]},
        (IN_SET, "txn_type"): {"value_set": ["purchase"]},
        (BETWEEN, "amount"): {"strict_min": False},
    }
    assert declared.suite_changes("events") == {(IN_SET, "event_type"): {"value_set": ["view", "buy"]}}


def test_the_suite_that_runs_holds_the_maps_set(transactions_suite):
    before = _in_set(transactions_suite, "txn_type")
    assert before == ["deposit", "card_payment", "transfer_in", "transfer_out"]
    changes = {
        (IN_SET, "txn_type"): {"value_set": ["purchase", "return"]},
        (IN_SET, "currency"): {"value_set": ["USD"]},
    }
    changed = with_kwargs(transactions_suite, changes)
    assert _in_set(changed, "txn_type") == ["purchase", "return"]
    assert _in_set(changed, "currency") == ["USD"]
    assert [r.id for r in changed.rules] == [r.id for r in transactions_suite.rules]  # the same expectations
    in_gx = [e for e in changed.to_json_dict()["expectations"] if e["kwargs"].get("column") == "txn_type"]
    assert [e["kwargs"]["value_set"] for e in in_gx if "value_set" in e["kwargs"]] == [["purchase", "return"]]
    assert _in_set(transactions_suite, "txn_type") == before  # the loaded suite is not changed
    assert with_kwargs(transactions_suite, {}) is transactions_suite


def test_a_set_for_a_column_without_one_is_an_error(transactions_suite):
    with pytest.raises(
        SuiteError, match="no expectation takes the map's rule: expect_column_values_to_be_in_set on merchant_c"
    ):
        with_kwargs(transactions_suite, {(IN_SET, "merchant_category"): {"value_set": ["books"]}})


def _transactions(txn_types: list[str], amounts: list[str] | None = None) -> pa.Table:
    n = len(txn_types)
    columns = {
        "txn_id": [f"t{i}" for i in range(n)],
        "user_id": ["u1"] * n,
        "occurred_at": ["2026-10-01T09:00:00Z"] * n,
        "amount": amounts or ["12.50"] * n,
        "currency": ["USD"] * n,
        "txn_type": txn_types,
        "merchant_category": [None] * n,
        "status": ["completed"] * n,
    }
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


def test_validation_accepts_the_maps_codes_and_refuses_others(transactions_suite):
    raw = _transactions(["purchase", "purchase", "deposit", "purchase"])
    retail = Actionable(currencies=("USD",), txn_types=("purchase",))
    outcome = validate(raw, "transactions", DS, retail)
    assert outcome.row_reasons["unknown_txn_type"].tolist() == [2]  # a savings code is unknown to a retailer
    savings = validate(raw, "transactions", DS, Actionable(currencies=("EUR", "USD", "GBP")))
    assert savings.row_reasons["unknown_txn_type"].tolist() == [0, 1, 3]


def test_zero_amounts_are_accepted_when_the_map_says_so(transactions_suite):
    raw = _transactions(["purchase"] * 4, ["0.00", "12.99", "-1", "0"])
    strict = validate(raw, "transactions", DS, Actionable(currencies=("USD",), txn_types=("purchase",)))
    assert strict.row_reasons["non_positive_amount"].tolist() == [0, 2, 3]
    free = Actionable(currencies=("USD",), txn_types=("purchase",), zero_amounts=True)
    assert validate(raw, "transactions", DS, free).row_reasons["non_positive_amount"].tolist() == [2]  # still < 0
