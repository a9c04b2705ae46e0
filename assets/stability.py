"""Stable audiences: hysteresis for scored segments (RFM groups, lifecycle stages).

Scored segments are recomputed from scratch every day: RFM quintiles move with everyone else's
behaviour, so a member near a boundary flips between groups on noise (on the demo, RFM groups replaced
more than their whole size in a day). Each scoring declares in the map (`segments.scored.<method>`):

- `refresh`: `daily` (default) or `weekly`. A weekly scoring is recomputed on Mondays (ISO weekday 1)
  and on the first day; on other days each member keeps its group while still eligible, and nobody
  enters.
- `min_stay_days` (default 1: no hold): a member stays in its group on the as-of days `since` ..
  `since + min_stay_days - 1` while still eligible, whatever today's scores say; a held user does not
  enter another group of the same scoring meanwhile, so the groups stay a partition. A user who
  leaves the eligible set (consent withdrawn, erased) leaves at once.

- `leave_margin` (RFM only, default 0): a member leaves its group only when today's R or F quintile
  (read from today's score) is more than `leave_margin` quintiles outside every cell of its group
  (enter at the group's cells, leave beyond them widened by the margin).

Eligible: the user is in today's features with personalization consent. A held row keeps its
previous `score` and `since`; every other row is today's scoring. With `min_stay_days` = S, at most the
members whose hold ended can leave on a day, which bounds the daily churn near 2 / S at steady state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl
import pyarrow as pa

from assets.pyramid_map import SegmentDefinition
from assets.rfm import RFM_GRID

REFRESH_WEEKDAY = 1  # Monday


def stabilize(
    fresh: pa.Table,
    previous: pa.Table | None,
    features: pa.Table,
    definitions: Sequence[SegmentDefinition],
    as_of: date,
) -> pa.Table:
    """Today's membership after each scoring's hysteresis; rule segments and the first day pass through."""
    methods = {
        d.method: d.scoring.stability
        for d in definitions
        if d.method != "rule" and d.scoring is not None and getattr(d.scoring, "stability", None)
    }
    active = {m: s for m, s in methods.items() if s.min_stay_days > 1 or s.refresh == "weekly" or s.leave_margin}
    if previous is None or previous.num_rows == 0 or not active:
        return fresh
    now, before = (
        pl.from_arrow(fresh),
        pl.from_arrow(previous.select(fresh.column_names)).cast(
            dict(zip(fresh.column_names, pl.from_arrow(fresh).dtypes))
        ),
    )
    eligible = (
        pl.from_arrow(features.select(["user_id", "consent_personalization"]))
        .filter(pl.col("consent_personalization"))
        .select(pl.col("user_id").cast(pl.String))
    )
    parts = [now.filter(~pl.col("segment_id").is_in(_ids(definitions, active)))]
    for method, stability in active.items():
        ids = _ids(definitions, {method: stability})
        today, kept = now.filter(pl.col("segment_id").is_in(ids)), before.filter(pl.col("segment_id").is_in(ids))
        kept = kept.join(eligible, on="user_id", how="semi").with_columns(as_of=pl.lit(as_of, pl.Date))
        if stability.refresh == "weekly" and as_of.isoweekday() != REFRESH_WEEKDAY:
            parts.append(kept)
            continue
        staying = pl.lit(stability.min_stay_days > 1) & (
            (pl.lit(as_of, pl.Date) - pl.col("since")).dt.total_days() < stability.min_stay_days
        )
        if method == "rfm" and stability.leave_margin:
            staying = staying | _near_own_group(kept, today, definitions, stability.leave_margin)
        held = (
            kept.join(today.select("user_id", pl.col("score").alias("fresh")), on="user_id", how="left")
            .filter(staying)
            .drop("fresh")
        )
        parts += [held, today.join(held.select("user_id"), on="user_id", how="anti")]
    merged = pl.concat(parts).sort(["segment_id", "user_id"])
    return merged.to_arrow().cast(fresh.schema)


def _near_own_group(
    kept: pl.DataFrame, today: pl.DataFrame, definitions: Sequence[SegmentDefinition], margin: int
) -> pl.Expr:
    """Today's R and F quintiles (from today's score 100 R + 10 F + M) lie within `margin` of a cell of the
    member's group; users scored in no listed group today are not held by it."""
    group = {d.id: d.group for d in definitions if d.method == "rfm"}
    r, f = (pl.col("fresh") // 100).cast(pl.Int64), ((pl.col("fresh") // 10) % 10).cast(pl.Int64)
    near = pl.lit(False)
    for segment_id, name in group.items():
        for (rl, rh), (fl, fh) in RFM_GRID[name]:
            near = near | (
                (pl.col("segment_id") == segment_id)
                & r.is_between(rl - margin, rh + margin)
                & f.is_between(fl - margin, fh + margin)
            )
    return pl.col("fresh").is_not_null() & near


def _ids(definitions: Sequence[SegmentDefinition], methods: dict) -> list[str]:
    return [d.id for d in definitions if d.method in methods]
