"""Which columns are personal: what never leaves the lake's personal layers for metadata, previews,
check results or reports. Decided from a column's name and the map's `actionable.pii`, never from a
list of tables. The privacy decisions the program takes (a consent default without profiles) are recorded
by assets/privacy_decisions.py."""

from __future__ import annotations

from collections.abc import Iterable

USER_ID = "user_id"  # the contract's user key (docs/contracts.md)
RAW_RECORD_COLUMNS = ("payload", "_raw_text")  # a row as it landed: may hold any of its fields


def is_identifier(column: str) -> bool:
    """An id column (`user_id`, `event_id`, `session_id` ...): its values single out a row or a user."""
    return column == "id" or column.endswith("_id")


def is_personal(column: str, pii: Iterable[str] = ()) -> bool:
    """A column whose values are a user id, PII, or a raw record that may contain either."""
    return column == USER_ID or column in set(pii) or column in RAW_RECORD_COLUMNS


def is_private(column: str, pii: Iterable[str] = ()) -> bool:
    """Values never shown outside the lake: personal columns and every identifier."""
    return is_personal(column, pii) or is_identifier(column)


def holds_personal_data(columns: Iterable[str], pii: Iterable[str] = ()) -> bool:
    """A table with a personal column: its rows are never shown, only per-column aggregates."""
    pii = tuple(pii)
    return any(is_personal(c, pii) for c in columns)
