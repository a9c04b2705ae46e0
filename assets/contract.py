"""The canonical landing contract: each source's columns, in order, and its key (docs/contracts.md).

A leaf module: the map's models check a source's declarations against it, the raw layer lands onto it.
"""

from __future__ import annotations

CANONICAL_COLUMNS: dict[str, list[str]] = {
    "events": [
        "event_id",
        "user_id",
        "event_type",
        "occurred_at",
        "session_id",
        "channel",
        "campaign_id",
        "touchpoint_id",
        "properties",
    ],
    "profiles": [
        "user_id",
        "updated_at",
        "signup_at",
        "country",
        "birth_year",
        "plan",
        "consent_personalization",
        "consent_marketing",
        "email",
        "phone",
        "full_name",
    ],
    "transactions": [
        "txn_id",
        "user_id",
        "occurred_at",
        "amount",
        "currency",
        "txn_type",
        "merchant_category",
        "status",
    ],
    "erasure_requests": ["user_id", "requested_at"],
}
MEASURE_SOURCES = ("events", "transactions")  # the sources the map's measures read: a user and an instant per row
TIME_COLUMN = "occurred_at"  # a measure source's instant: its row's UTC day, and the order of a `last` measure
KEY_COLUMNS: dict[str, str] = {"events": "event_id", "transactions": "txn_id"}  # a key the map may generate
