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


def append_clean_rows(rows: dict[str, np.ndarray], added: dict[str, np.ndarray] | None) -> None:
    """Append rows drawn apart to a source's rows after its defects (clean, landing on their day, new ids after
    every drawn one), keeping the rows ordered by landing day; the rows already there keep their order."""
    if not added or not len(added["t"]):
        return
    n = len(added["t"])
    extra = {
        **{k: v for k, v in added.items() if k != "day"},
        "land": added["land"] if "land" in added else added["day"].astype(np.int32),
        "defect": np.zeros(n, dtype=rows["defect"].dtype),
        "seq": (rows["seq"].max(initial=-1) + 1 + np.arange(n)).astype(rows["seq"].dtype),
        "style": np.zeros(n, dtype=rows["style"].dtype),
    }
    for key in rows:
        rows[key] = np.concatenate([rows[key], extra[key].astype(rows[key].dtype)])
    order = np.argsort(rows["land"], kind="stable")
    for key in rows:
        rows[key] = rows[key][order]
