"""A source's rows as a dict of equally long numpy columns: joining day parts, ordering by arrival."""

from __future__ import annotations

import numpy as np


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One set of rows from parts with the same columns, in the order given."""
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def in_arrival_order(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows by day, then minute of occurrence; within a minute as generated (sessions start first).

    Two stable sorts of 16-bit keys (numpy sorts those by radix, in linear time), minute then day,
    make one permutation: much cheaper than sorting the microseconds.
    """
    minute = ((rows["t"] // 60_000_000) % 1440).astype(np.uint16)
    order = np.argsort(minute, kind="stable")
    order = order[np.argsort(rows["day"][order], kind="stable")]
    return {key: column[order] for key, column in rows.items()}


def append_clean(rows: dict[str, np.ndarray], extra: dict[str, np.ndarray], first_seq: int) -> dict[str, np.ndarray]:
    """`rows` (after the defects: by landing day) with `extra` (in arrival order) delivered clean on the day they
    occurred, after that day's rows, numbered from `first_seq`: every row of `rows` keeps its id and order."""
    n = len(extra["t"])
    added = {
        **{key: column for key, column in extra.items() if key != "day"},
        "land": extra["day"].astype(rows["land"].dtype),
        "seq": np.arange(first_seq, first_seq + n).astype(rows["seq"].dtype),
        "defect": np.zeros(n, dtype=rows["defect"].dtype),
        "style": np.zeros(n, dtype=rows["style"].dtype),
    }
    joined = {key: np.concatenate([rows[key], added[key].astype(rows[key].dtype)]) for key in rows}
    order = np.argsort(joined["land"], kind="stable")
    return {key: column[order] for key, column in joined.items()}
