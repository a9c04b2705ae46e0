"""Transactions: deposits, card payments, transfers and salaries, completed or not, as arrays of codes."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from pipelines.sample.population import Population, earliest, eligible
from pipelines.sample.rows import concat, in_arrival_order
from pipelines.sample.spec import Spec, time_of_day

TXN_TYPES = ("deposit", "card_payment", "transfer_in", "transfer_out")
STATUSES = ("completed", "pending", "failed")
NON_COMPLETED_WEIGHTS = (0.6, 0.4)  # pending, failed
MERCHANT_CATEGORIES = (
    "groceries",
    "restaurants",
    "transport",
    "travel",
    "entertainment",
    "utilities",
    "shopping",
    "health",
)
MERCHANT_WEIGHTS = (0.30, 0.18, 0.14, 0.05, 0.08, 0.07, 0.13, 0.05)
NON_COMPLETED_RATIO = 0.06  # pending/failed rows per user-day, relative to the base day probability
# Extra rows (Poisson mean) on a day that has one of the type
EXTRA_TXNS = {"deposit": 0.2, "card_payment": 0.5, "transfer_in": 0.0, "transfer_out": 0.1}


def generate_transactions(spec: Spec, pop: Population) -> dict[str, np.ndarray]:
    """The clean transactions of every activity day, in arrival order: salaries, then one draw per type."""
    parts = []
    for day in range(spec.days):
        rng = spec.rng("transactions", day)
        users, day_start = eligible(pop, day), spec.day_start(day)
        day_parts = [_salaries(rng, pop, users, day_start, (spec.start + timedelta(days=day)).day)]
        day_parts += [_typed_transactions(rng, pop, users, day_start, txn_type) for txn_type in TXN_TYPES]
        for part in day_parts:
            part["day"] = np.full(len(part["t"]), day, dtype=np.uint16)
        parts += day_parts
    return in_arrival_order(concat(parts))


def _typed_transactions(
    rng: np.random.Generator, pop: Population, users: np.ndarray, day_start: int, txn_type: str
) -> dict:
    """Completed rows on days drawn with the (treated) day probability; pending/failed rows beside them."""
    base = pop.rates[txn_type][users]
    has_day = rng.random(len(users)) < pop.rates.get(f"{txn_type}_treated", pop.rates[txn_type])[users]
    completed = np.repeat(users[has_day], 1 + rng.poisson(EXTRA_TXNS[txn_type], has_day.sum()))
    other = users[rng.random(len(users)) < base * NON_COMPLETED_RATIO]  # drawn on the base rate: arm-blind
    status = np.concatenate(
        [np.zeros(len(completed), dtype=np.int8), 1 + rng.choice(2, len(other), p=NON_COMPLETED_WEIGHTS)]
    )
    who = np.concatenate([completed, other])
    t = day_start + time_of_day(rng, len(who), earliest(pop, who, day_start))
    return _txn_rows(rng, pop, who, txn_type, t, status)


def _salaries(rng: np.random.Generator, pop: Population, users: np.ndarray, day_start: int, day_of_month: int) -> dict:
    paid = users[pop.rates["payday"][users] == day_of_month]
    t = day_start + time_of_day(rng, len(paid), earliest(pop, paid, day_start))
    income = pop.rates["income"][paid]
    return _txn_rows(rng, pop, paid, "transfer_in", t, np.zeros(len(paid)), scale=income, spread=0.05)


def _txn_rows(
    rng: np.random.Generator,
    pop: Population,
    who: np.ndarray,
    txn_type: str,
    t: np.ndarray,
    status: np.ndarray,
    *,
    scale: np.ndarray | None = None,
    spread: float = 0.6,
) -> dict:
    n = len(who)
    scale = pop.rates[f"scale_{txn_type}"][who] if scale is None else scale
    if txn_type == "card_payment":
        merchant = rng.choice(len(MERCHANT_CATEGORIES), n, p=MERCHANT_WEIGHTS)
    else:
        merchant = np.full(n, -1)
    return {
        "user": who.astype(np.int32),
        "ttype": np.full(n, TXN_TYPES.index(txn_type), dtype=np.int8),
        "t": np.asarray(t, dtype=np.int64),
        "amount": np.round(scale * rng.lognormal(0.0, spread, n), 2).clip(0.01),
        "status": np.asarray(status, dtype=np.int8),
        "merchant": merchant.astype(np.int8),
        "currency": pop.currency[who],
    }
