"""The map's accepted codes (actionable.currencies, txn_types, event_types) replace the suites' sets at load time."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from assets.actionable import validate
from assets.pyramid_map import Actionable
from assets.quality.suites import SuiteError, load_suite, suite_path, with_value_sets

DS = date(2026, 10, 1)


@pytest.fixture(scope="module")
def transactions_suite():
    pytest.importorskip("great_expectations")
    return load_suite(suite_path("transactions"))


def _in_set(suite, column: str) -> list[str]:
    (rule,) = [r for r in suite.rules if r.column == column and r.type == "expect_column_values_to_be_in_set"]
    return list(rule.kwargs["value_set"])


def test_value_sets_default_to_the_suites_own():
    settings = Actionable(currencies=("EUR", "USD", "GBP"))
    assert settings.value_sets("transactions") == {"currency": ("EUR", "USD", "GBP")}
    assert settings.value_sets("events") == {}
    assert settings.value_sets("profiles") == {}
    declared = Actionable(currencies=("USD",), txn_types=("purchase",), event_types=("view", "buy"))
    assert declared.value_sets("transactions") == {"currency": ("USD",), "txn_type": ("purchase",)}
    assert declared.value_sets("events") == {"event_type": ("view", "buy")}


def test_the_suite_that_runs_holds_the_maps_set(transactions_suite):
    before = _in_set(transactions_suite, "txn_type")
    assert before == ["deposit", "card_payment", "transfer_in", "transfer_out"]
    changed = with_value_sets(transactions_suite, {"txn_type": ("purchase", "return"), "currency": ("USD",)})
    assert _in_set(changed, "txn_type") == ["purchase", "return"]
    assert _in_set(changed, "currency") == ["USD"]
    assert [r.id for r in changed.rules] == [r.id for r in transactions_suite.rules]  # the same expectations
    in_gx = [e for e in changed.to_json_dict()["expectations"] if e["kwargs"].get("column") == "txn_type"]
    assert [e["kwargs"]["value_set"] for e in in_gx if "value_set" in e["kwargs"]] == [["purchase", "return"]]
    assert _in_set(transactions_suite, "txn_type") == before  # the loaded suite is not changed
    assert with_value_sets(transactions_suite, {}) is transactions_suite


def test_a_set_for_a_column_without_one_is_an_error(transactions_suite):
    with pytest.raises(SuiteError, match="no expect_column_values_to_be_in_set on merchant_category"):
        with_value_sets(transactions_suite, {"merchant_category": ("books",)})


def _transactions(txn_types: list[str]) -> pa.Table:
    n = len(txn_types)
    columns = {
        "txn_id": [f"t{i}" for i in range(n)],
        "user_id": ["u1"] * n,
        "occurred_at": ["2026-10-01T09:00:00Z"] * n,
        "amount": ["12.50"] * n,
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
