"""The canonical landing contract: each source's columns, in order, and its key (docs/contracts.md); the actionable
tables' schemas, which type every promoted column.

A leaf module: the map's models check a source's declarations against it, the raw layer lands onto it, the
actionable layer and the measures type their columns from it.
"""

from __future__ import annotations

import pyarrow as pa

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

UTC = pa.timestamp("us", tz="UTC")
# the quarantine (assets/judging.py): each refused row as landed, with its reasons
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("_source_file", pa.string()),
        ("_source_line", pa.int64()),
        ("payload", pa.string()),
        ("reasons", pa.list_(pa.string())),
    ]
)
# the actionable tables (assets/actionable.py): every promoted column with its type
SCHEMAS: dict[str, pa.Schema] = {
    "events": pa.schema(
        [
            ("event_id", pa.string()),
            ("user_id", pa.string()),
            ("event_type", pa.string()),
            ("occurred_at", UTC),
            ("session_id", pa.string()),
            ("channel", pa.string()),
            ("campaign_id", pa.string()),
            ("touchpoint_id", pa.string()),
            ("properties", pa.string()),
        ]
    ),
    "transactions": pa.schema(
        [
            ("txn_id", pa.string()),
            ("user_id", pa.string()),
            ("occurred_at", UTC),
            ("amount", pa.float64()),
            ("currency", pa.string()),
            ("txn_type", pa.string()),
            ("merchant_category", pa.string()),
            ("status", pa.string()),
        ]
    ),
    "profiles": pa.schema(
        [
            ("user_id", pa.string()),
            ("updated_at", UTC),
            ("signup_at", UTC),
            ("country", pa.string()),
            ("birth_year", pa.int32()),
            ("plan", pa.string()),
            ("consent_personalization", pa.bool_()),
        ]
    ),
    "erased_users": pa.schema([("user_id", pa.string()), ("requested_at", UTC)]),
    "quarantine": QUARANTINE_SCHEMA,
}
