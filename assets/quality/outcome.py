"""What a validation found: `ValidationOutcome`, its per-expectation summaries and the column status.

The outcome holds the positional indices of the failing rows of each row expectation (from GX's
COMPLETE result, `unexpected_index_list`, exact: the frame is given to GX with a RangeIndex, so GX's
index labels are positions), the status of each column expectation, one summary per expectation for
asset-check metadata, the severity picture and GX's suite result for Data Docs. No GX import here.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from assets.quality.suites import SEVERITIES, Rule, Suite
from assets.quality.typed_batch import base_column

if TYPE_CHECKING:  # pragma: no cover - typing only
    from great_expectations.core import ExpectationSuiteValidationResult


class QualityError(RuntimeError):
    """A validation that could not be carried out (an expectation raised, a column is missing)."""


@dataclass(frozen=True)
class RowFailure:
    """The rows one row expectation refuses: positional indices into the validated batch, ascending."""

    rule: Rule
    indices: np.ndarray

    @property
    def reason(self) -> str:
        return self.rule.reason or ""


@dataclass(frozen=True)
class ColumnStatus:
    """The verdict of one column expectation.

    `observed_value` is GX's observed value for an aggregate expectation (a mean, a proportion) and,
    for a row-wise expectation used with `mostly`, the share of non-missing rows that met it (what
    `mostly` is compared with). `status`: `passed`, `withheld` (failed, critical) or `warned`."""

    column: str | None
    expectation_type: str
    success: bool
    observed_value: Any
    unexpected_percent: float | None
    mostly: float | None
    severity: str
    status: str
    check_name: str


@dataclass
class ValidationOutcome:
    suite: str
    batch_name: str
    row_count: int
    success: bool
    row_failures: list[RowFailure]
    column_status: list[ColumnStatus]
    checks: dict[str, dict]
    severity: dict[str, Any]
    gx_result: ExpectationSuiteValidationResult
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def row_reasons(self) -> dict[str, np.ndarray]:
        """reason -> the positional indices of the rows refused for it (ascending, each once)."""
        merged: dict[str, list[np.ndarray]] = {}
        for failure in self.row_failures:
            merged.setdefault(failure.reason, []).append(failure.indices)
        return {reason: np.unique(np.concatenate(parts)) for reason, parts in merged.items()}

    def failing_rows(self, severity: str | None = None) -> pa.Table:
        """One row per refused row: `_row` (position in the batch) and `reasons` (list, suite order),
        ordered by `_row`; `severity` keeps only the row expectations of that severity."""
        rows, reasons = [], []
        order = {reason: i for i, reason in enumerate(dict.fromkeys(f.reason for f in self.row_failures))}
        for failure in self.row_failures:
            if severity is None or failure.rule.severity == severity:
                rows.append(failure.indices)
                reasons.append(np.full(len(failure.indices), order[failure.reason], dtype=np.int32))
        if not rows:
            return pa.table({"_row": pa.array([], pa.int64()), "reasons": pa.array([], pa.list_(pa.string()))})
        all_rows, all_codes = np.concatenate(rows), np.concatenate(reasons)
        pairs = np.unique(np.stack([all_rows, all_codes.astype(np.int64)]), axis=1)  # sorted by row, then code
        unique_rows, starts = np.unique(pairs[0], return_index=True)
        names = np.array(list(order), dtype=object)
        offsets = np.append(starts, pairs.shape[1]).astype(np.int32)
        values = pa.array(names[pairs[1]].tolist(), pa.string())
        return pa.table(
            {"_row": pa.array(unique_rows, pa.int64()), "reasons": pa.ListArray.from_arrays(pa.array(offsets), values)}
        )

    def reasons_per_row(self) -> list[list[str]]:
        """For every row of the batch, its reasons (empty when it passed every row expectation)."""
        result: list[list[str]] = [[] for _ in range(self.row_count)]
        failing = self.failing_rows()
        for row, reasons in zip(failing.column("_row").to_pylist(), failing.column("reasons").to_pylist()):
            result[row] = reasons
        return result


UNEXPECTED_VALUE_KEYS = ("unexpected_list", "partial_unexpected_list", "partial_unexpected_counts")


def outcome_from_result(
    result: ExpectationSuiteValidationResult,
    suite: Suite,
    batch_name: str,
    row_count: int,
    sample_size: int,
    masked: Collection[str] = frozenset(),
) -> ValidationOutcome:
    """The outcome of GX's suite result. `masked`: ids of the expectations on private columns (ids, PII),
    whose unexpected values are dropped from the result (hence from Data Docs) and from the samples."""
    by_id = {r.id: r for r in suite.rules}
    results = {}
    for item in result.results:
        rule = by_id.get(item.expectation_config.id)
        if rule is None:  # pragma: no cover - GX keeps the ids
            raise QualityError(f"GX returned a result for an unknown expectation {item.expectation_config.type}")
        results[rule.id] = item
    errors = [
        f"{r.check_name}: {message}"
        for r in suite.rules
        if r.id in results
        for message in _exception_messages(results[r.id].exception_info)
    ]
    if errors or len(results) != len(suite.rules):
        raise QualityError(
            f"suite {suite.name!r} on {batch_name}: GX could not evaluate " + "; ".join(errors or ["every expectation"])
        )

    row_failures, column_status, checks = [], [], {}
    for rule in suite.rules:
        item = results[rule.id]
        info = item.result or {}
        if rule.id in masked:
            for key in UNEXPECTED_VALUE_KEYS:
                info.pop(key, None)
        if rule.decides == "row":
            indices = info.get("unexpected_index_list")
            count = info.get("unexpected_count") or 0
            if indices is None or len(indices) != count:
                raise QualityError(
                    f"{rule.check_name}: GX gave {0 if indices is None else len(indices)} unexpected "
                    f"indices for {count} unexpected rows"
                )
            array = np.asarray(indices, dtype=np.int64)
            row_failures.append(RowFailure(rule=rule, indices=np.sort(array) if len(array) else array))
            info.pop("unexpected_index_list", None)  # kept once, in row_failures; Data Docs stays small
        else:
            observed = _observed_value(info)
            status = "passed" if item.success else ("withheld" if rule.severity == "critical" else "warned")
            column_status.append(
                ColumnStatus(
                    column=rule.column,
                    expectation_type=rule.type,
                    success=bool(item.success),
                    observed_value=observed,
                    unexpected_percent=_number(info.get("unexpected_percent")),
                    mostly=rule.mostly,
                    severity=rule.severity,
                    status=status,
                    check_name=rule.check_name,
                )
            )
        checks[rule.check_name] = _check_summary(rule, item, info, sample_size, rule.id in masked)

    failed = [r for r in suite.rules if not results[r.id].success]
    severity = {
        "max_failed_severity": max((r.severity for r in failed), key=SEVERITIES[::-1].index, default=None),
        "column_withheld": [r.check_name for r in failed if r.decides == "column" and r.severity == "critical"],
        "column_warned": [r.check_name for r in failed if r.decides == "column" and r.severity == "warning"],
        "row_critical_failed": [r.check_name for r in failed if r.decides == "row" and r.severity == "critical"],
        "row_warning_failed": [r.check_name for r in failed if r.decides == "row" and r.severity == "warning"],
    }
    return ValidationOutcome(
        suite=suite.name,
        batch_name=batch_name,
        row_count=row_count,
        success=bool(result.success),
        row_failures=row_failures,
        column_status=column_status,
        checks=checks,
        severity=severity,
        gx_result=result,
    )


def _exception_messages(info: Any) -> list[str]:
    """GX's exception_info is either {"raised_exception": ..., "exception_message": ...} or, when a
    metric failed, {"MetricConfigurationID(...)": {that dict}, ...}."""
    if not isinstance(info, Mapping):
        return []
    if "raised_exception" in info:
        return [str(info.get("exception_message"))] if info.get("raised_exception") else []
    return [m for value in info.values() for m in _exception_messages(value)]


def _observed_value(info: Mapping[str, Any]) -> Any:
    if "observed_value" in info:
        return _json_safe(info["observed_value"])
    percent = _number(info.get("unexpected_percent"))
    return None if percent is None else round(1.0 - percent / 100.0, 6)


def _check_summary(rule: Rule, item: Any, info: Mapping[str, Any], sample_size: int, masked: bool = False) -> dict:
    summary = {
        "expectation_type": rule.type,
        "column": rule.column,
        "decides": rule.decides,
        "reason": rule.reason,
        "severity": rule.severity,
        "success": bool(item.success),
        "mostly": rule.mostly,
        "element_count": info.get("element_count"),
        "missing_count": info.get("missing_count"),
        "unexpected_count": info.get("unexpected_count"),
        "unexpected_percent": _number(info.get("unexpected_percent")),
        "observed_value": _observed_value(info),
        "sample_unexpected": [_json_safe(v) for v in (info.get("partial_unexpected_list") or [])[:sample_size]],
    }
    if rule.type == "expect_column_values_to_not_be_null":
        summary["sample_unexpected"] = []  # every unexpected value is null: nothing to show
    if masked:
        summary["sample_unexpected"], summary["samples_masked"] = [], True
    if rule.decides == "column":
        summary["status"] = "passed" if item.success else ("withheld" if rule.severity == "critical" else "warned")
    return {k: v for k, v in summary.items() if v is not None or k in ("observed_value", "reason")}


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if np.isnan(number) else number


def _json_safe(value: Any) -> Any:
    """A JSON value for check metadata: None for missing, ISO text for instants, plain numbers."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    try:
        if value != value:  # NaT, pd.NA and other NaN-likes
            return None
    except (TypeError, ValueError):  # pd.NA refuses bool()
        return None
    except NotImplementedError:  # a pandas Timestamp beyond year 9999 (below)
        pass
    if hasattr(value, "isoformat"):
        try:
            return value.isoformat()
        except (ValueError, OverflowError, NotImplementedError):  # a pandas Timestamp beyond year 9999
            zone = "" if getattr(value, "tzinfo", None) is None else f" {value.tzinfo}"
            return (
                f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}"
                f":{value.second:02d}{zone}"
            )
    return str(value)


def withheld_columns(outcome: ValidationOutcome) -> list[str]:
    """The canonical columns withheld by this outcome (a critical column expectation failed), sorted."""
    return sorted({base_column(c.column) for c in outcome.column_status if c.status == "withheld" and c.column})


COLUMN_STATUS_SCHEMA = pa.schema(
    [
        ("ds", pa.date32()),
        ("source", pa.string()),
        ("column", pa.string()),
        ("status", pa.string()),
        ("expectation", pa.string()),
        ("expectation_type", pa.string()),
        ("severity", pa.string()),
        ("success", pa.bool_()),
        ("observed_value", pa.string()),
        ("unexpected_percent", pa.float64()),
        ("mostly", pa.float64()),
    ]
)


def column_status_table(outcome: ValidationOutcome, source: str, ds: date) -> pa.Table:
    """One row per column expectation of the run: `status` is `withheld` when a critical column
    expectation failed, else `promoted` (a failed warning expectation promotes, `success` false).
    `observed_value` is GX's observed value as JSON text; `expectation` the check name."""
    rows = [
        {
            "ds": ds,
            "source": source,
            "column": base_column(c.column),
            "status": "withheld" if c.status == "withheld" else "promoted",
            "expectation": c.check_name,
            "expectation_type": c.expectation_type,
            "severity": c.severity,
            "success": c.success,
            "observed_value": json.dumps(_json_safe(c.observed_value)),
            "unexpected_percent": c.unexpected_percent,
            "mostly": c.mostly,
        }
        for c in outcome.column_status
    ]
    return pa.Table.from_pylist(rows, schema=COLUMN_STATUS_SCHEMA)
