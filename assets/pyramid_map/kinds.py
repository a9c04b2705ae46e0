"""Metric kinds and directions (docs/statistics.md): what each kind is computed from."""

from __future__ import annotations

from typing import Literal, get_args

MetricKind = Literal["share", "ratio", "mean", "time_to_event"]
Direction = Literal["increase", "decrease"]
METRIC_KINDS: tuple[str, ...] = get_args(MetricKind)
DIRECTIONS: tuple[str, ...] = get_args(Direction)
# The SQL expressions of each kind (time_to_event: `condition` is the event; `anchor`, `horizon_days` its own).
KIND_EXPRESSIONS: dict[str, tuple[str, ...]] = {
    "share": ("condition",),
    "ratio": ("numerator", "denominator"),
    "mean": ("value",),
    "time_to_event": ("condition",),
}
