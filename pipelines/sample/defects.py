"""Planted defects: which rows carry which defect, the late and duplicated deliveries, and their counts.

Every row drawn as clean gets at most one defect, chosen without looking at the campaign arm; the counts
per defect and landing day become the defect plan (`_truth/defect_plan.json`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from pipelines.sample.behaviour import EVENT_TYPES
from pipelines.sample.population import CURRENCIES, PLANS, Population
from pipelines.sample.spec import DAY_US, SOURCES, Spec

# Share of a source's clean rows given each defect (one defect per row).
EVENT_DEFECT_RATES: dict[str, float] = {
    "duplicate": 0.005,  # an exact copy delivered again, the same landing day or 1-5 days later
    "late": 0.01,  # lands 1-3 days after the day it occurred
    "mixed_offset": 0.01,  # the same instant written with a non-UTC offset (valid)
    "null_user_id": 0.001,
    "null_id": 0.001,  # event_id missing
    "unparseable_timestamp": 0.001,
    "future_timestamp": 0.001,  # occurred_at 2-30 days after the landing day
    "orphan_user": 0.001,  # a user id that no profile ever carries
    "unknown_event_type": 0.001,
}
TRANSACTION_DEFECT_RATES: dict[str, float] = {
    "duplicate": 0.005,
    "late": 0.01,
    "mixed_offset": 0.01,
    "null_user_id": 0.002,
    "null_id": 0.002,  # txn_id missing
    "unparseable_timestamp": 0.002,
    "future_timestamp": 0.002,
    "orphan_user": 0.002,
    "negative_amount": 0.003,
    "absurd_amount": 0.002,  # above 1,000,000
    "unknown_currency": 0.003,
}
# Shares of the profile *update* rows: a user's first profile is always clean, so no user goes missing.
PROFILE_DEFECT_RATES: dict[str, float] = {
    "contradictory_update": 0.05,  # a second row: same user and updated_at, another plan
    "bad_birth_year": 0.02,  # birth_year is not a number
}
QUARANTINE_REASONS: dict[str, str | None] = {  # docs/contracts.md reason codes; None: not refused
    "duplicate": None,
    "late": None,
    "mixed_offset": None,
    "contradictory_update": None,
    "null_user_id": "missing_user_id",
    "null_id": "missing_key",
    "unparseable_timestamp": "bad_timestamp",
    "future_timestamp": "future_timestamp",
    "orphan_user": "orphan_user",
    "unknown_event_type": "unknown_event_type",
    "negative_amount": "non_positive_amount",
    "absurd_amount": "absurd_amount",
    "unknown_currency": "unknown_currency",
    "bad_birth_year": "bad_birth_year",
}
EXPECTED_HANDLING: dict[str, str] = {
    "duplicate": "removed by deduplication on the id; the first delivery is kept",
    "late": "accepted; counts for its activity day from its landing day on",
    "mixed_offset": "accepted; converted to UTC it is the instant the clean row would have had",
    "contradictory_update": "accepted; one of the two rows wins by a deterministic tie-break",
}
LATE_DAYS = (1, 3)
DUPLICATE_DELAY_DAYS = (0, 5)
FUTURE_DAYS = (2, 30)
BAD_TIMESTAMPS = ("not-a-date", "2026-13-45T99:00", "N/A", "32/10/2026 25:61")
MIXED_OFFSETS = ("+02:00", "-05:00", "+05:30", "-03:00", "+01:00")
UNKNOWN_EVENT_TYPES = ("app_crash", "pageview", "tap")
UNKNOWN_CURRENCIES = ("XXX", "EURO", "BTC")
BAD_BIRTH_YEARS = ("n/a", "19x5", "unknown")
ORPHAN_USER_IDS = tuple(f"x{9_999_999 - 7919 * k:07d}" for k in range(40))
ABSURD_AMOUNTS = (1_000_001.0, 50_000_000.0)

SECONDARY_STYLE_SHARE = 0.10  # rows written in the source's second timestamp style
ST_SECONDARY, ST_MIXED = 1, 2  # timestamp style codes: 0 main, 1 second style, then offsets, then bad texts
ST_BAD = ST_MIXED + len(MIXED_OFFSETS)


def _defect_codes(rng: np.random.Generator, n: int, rates: Mapping[str, float]) -> np.ndarray:
    """0 for a clean row, k for the k-th defect: disjoint sets of exactly round(rate * n) rows each."""
    counts = [round(rate * n) for rate in rates.values()]
    if sum(counts) > n:
        raise ValueError(f"defect rates add up to more than the {n} rows generated")
    codes = np.zeros(n, dtype=np.int8)
    codes[rng.choice(n, sum(counts), replace=False)] = np.repeat(np.arange(1, len(counts) + 1, dtype=np.int8), counts)
    return codes


def plant_row_defects(spec: Spec, pop: Population, rows: dict, rates: Mapping[str, float], source: str) -> dict:
    """Plant one defect in each chosen row; add the duplicates; keep what lands in time; count it all."""
    rng = spec.rng("defects", SOURCES.index(source))
    names = list(rates)
    n = len(rows["t"])
    rows["defect"] = _defect_codes(rng, n, rates)
    rows["land"] = rows.pop("day").astype(np.int32)
    rows["seq"] = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)  # the id's number; -1: no id
    rows["style"] = (rng.random(n) < SECONDARY_STYLE_SHARE).astype(np.int8)

    def plant(name: str, column: str, values: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        rows_with = np.flatnonzero(rows["defect"] == names.index(name) + 1)
        rows[column][rows_with] = values(rows[column][rows_with])
        return rows_with

    def one_of(options: int, offset: int) -> Callable[[np.ndarray], np.ndarray]:
        return lambda current: offset + rng.integers(0, options, len(current))

    late = plant("late", "land", lambda land: land + rng.integers(LATE_DAYS[0], LATE_DAYS[1] + 1, len(land)))
    plant("mixed_offset", "style", one_of(len(MIXED_OFFSETS), ST_MIXED))
    plant("unparseable_timestamp", "style", one_of(len(BAD_TIMESTAMPS), ST_BAD))
    plant("future_timestamp", "t", lambda t: t + rng.integers(FUTURE_DAYS[0], FUTURE_DAYS[1] + 1, len(t)) * DAY_US)
    plant("orphan_user", "user", one_of(len(ORPHAN_USER_IDS), pop.n))
    plant("null_user_id", "user", one_of(1, pop.n + len(ORPHAN_USER_IDS)))  # the user columns' null code
    plant("null_id", "seq", lambda seq: np.full(len(seq), -1))
    if source == "events":
        plant("unknown_event_type", "etype", one_of(len(UNKNOWN_EVENT_TYPES), len(EVENT_TYPES)))
    else:
        plant("negative_amount", "amount", lambda amount: -amount)
        plant("absurd_amount", "amount", lambda amount: np.round(rng.uniform(*ABSURD_AMOUNTS, len(amount)), 2))
        plant("unknown_currency", "currency", one_of(len(UNKNOWN_CURRENCIES), len(CURRENCIES)))
    duplicated = np.flatnonzero(rows["defect"] == names.index("duplicate") + 1)
    extra = _add_duplicates(rng, rows, duplicated, names.index("duplicate") + 1)
    extra[late] = True
    _keep_what_lands_in_time(spec, pop, rows, extra)
    return _plan_counts(spec, names, rows["defect"], rows["land"], rates)


def _add_duplicates(rng: np.random.Generator, rows: dict, originals: np.ndarray, code: int) -> np.ndarray:
    """The chosen rows stay clean; an exact copy of each is appended, delivered 0-5 days later.

    Returns the mask of rows that arrive after the regular delivery of their landing day.
    """
    copies = {key: column[originals] for key, column in rows.items()}
    rows["defect"][originals] = 0
    copies["land"] = copies["land"] + rng.integers(DUPLICATE_DELAY_DAYS[0], DUPLICATE_DELAY_DAYS[1] + 1, len(originals))
    copies["defect"][:] = code
    extra = np.concatenate([np.zeros(len(rows["t"]), dtype=bool), np.ones(len(originals), dtype=bool)])
    for key in rows:
        rows[key] = np.concatenate([rows[key], copies[key]])
    return extra


def _keep_what_lands_in_time(spec: Spec, pop: Population, rows: dict, extra: np.ndarray) -> None:
    """Drop late rows and copies landing after the window, or once their user asked to be erased (so
    they are never orphans); order by landing day, the day's regular delivery first."""
    keep = rows["land"] < spec.days
    delayed = np.flatnonzero(extra & keep)
    user = rows["user"][delayed]  # real users only: one defect a row, so no orphan or null id here
    erased = pop.erasure_us[user] >= 0
    keep[delayed[erased]] = rows["land"][delayed[erased]] < (pop.erasure_us[user[erased]] - spec.start_us) // DAY_US
    kept = np.flatnonzero(keep)
    order = kept[np.argsort(rows["land"][kept] * 2 + extra[kept], kind="stable")]
    for key in rows:
        rows[key] = rows[key][order]


def plant_profile_defects(spec: Spec, profiles: dict, first_profiles: int) -> dict:
    """Among update rows: unreadable birth years, and contradictory twins (same user and time, other plan)."""
    rng = spec.rng("defects", SOURCES.index("profiles"))
    names = list(PROFILE_DEFECT_RATES)
    updates = np.arange(first_profiles, len(profiles["user"]))
    codes = _defect_codes(rng, len(updates), PROFILE_DEFECT_RATES)
    bad = updates[codes == names.index("bad_birth_year") + 1]
    profiles["bad_year"][bad] = rng.integers(0, len(BAD_BIRTH_YEARS), len(bad))
    profiles["defect"][bad] = names.index("bad_birth_year") + 1
    twins = {key: column[updates[codes == names.index("contradictory_update") + 1]] for key, column in profiles.items()}
    twins["plan"] = (twins["plan"] + rng.integers(1, len(PLANS), len(twins["plan"]))) % len(PLANS)
    twins["defect"][:] = names.index("contradictory_update") + 1
    for key in profiles:
        profiles[key] = np.concatenate([profiles[key], twins[key]])
    order = np.lexsort((profiles["user"], profiles["land"]))  # stable: a twin follows its original
    for key in profiles:
        profiles[key] = profiles[key][order]
    return _plan_counts(spec, names, profiles["defect"], profiles["land"], PROFILE_DEFECT_RATES)


def _plan_counts(spec: Spec, names: list[str], codes: np.ndarray, land: np.ndarray, rates: Mapping[str, float]) -> dict:
    plan = {}
    for k, name in enumerate(names, start=1):
        by_day = np.bincount(land[codes == k], minlength=spec.days)
        plan[name] = {
            "count": int(by_day.sum()),
            "rate": rates[name],
            "quarantine_reason": QUARANTINE_REASONS[name],
            "expected_handling": EXPECTED_HANDLING.get(name, f"quarantined as {QUARANTINE_REASONS[name]}"),
            "by_landing_day": {spec.ds(d): int(c) for d, c in enumerate(by_day) if c},
        }
    return plan
