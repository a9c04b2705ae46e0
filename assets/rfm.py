"""The RFM grid: which group a user's recency and frequency quintiles (1..5, 5 = best) put them in.

Shared by the scoring (assets/segments.py) and the hysteresis that keeps members near their group
(assets/stability.py).
"""

from __future__ import annotations

# The standard R x F segment map (the grid published with most RFM tutorials: R and F quintiles,
# 5 = best), with `lost` split off `hibernating` as its bottom cell (R = 1, F = 1). M is scored and
# kept in the score but does not choose the group (it follows F closely). (R range, F range) -> group.
RFM_GRID: dict[str, list[tuple[tuple[int, int], tuple[int, int]]]] = {
    "champions": [((5, 5), (4, 5))],
    "loyal": [((3, 4), (4, 5))],
    "potential_loyalists": [((4, 5), (2, 3))],
    "new": [((5, 5), (1, 1))],
    "promising": [((4, 4), (1, 1))],
    "need_attention": [((3, 3), (3, 3))],
    "about_to_sleep": [((3, 3), (1, 2))],
    "at_risk": [((1, 2), (3, 4))],
    "cannot_lose_them": [((1, 2), (5, 5))],
    "hibernating": [((1, 2), (1, 2))],  # but R = 1 and F = 1 is lost (lost is matched first)
    "lost": [((1, 1), (1, 1))],
}


def rfm_group(r: int, f: int) -> str:
    """The RFM group of recency and frequency quintiles (1..5); every (r, f) has exactly one group."""
    if (r, f) == (1, 1):
        return "lost"
    for group, cells in RFM_GRID.items():
        if any(rl <= r <= rh and fl <= f <= fh for (rl, rh), (fl, fh) in cells):
            return group
    raise ValueError(f"no RFM group for R={r}, F={f}")
