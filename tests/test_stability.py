"""Stable audiences: min_stay_days, leave_margin and weekly refresh on hand-made memberships."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from assets.pyramid_map import RfmScoring, SegmentDefinition, Stability
from assets.segments import MEMBERSHIP_SCHEMA
from assets.stability import stabilize

D = date(2026, 10, 7)  # a Wednesday


def _defs(stability: Stability) -> list[SegmentDefinition]:
    scoring = RfmScoring(90, ("champions", "lost"), 1, stability)
    return [SegmentDefinition(f"rfm_{g}", "value", "", "", "", 1, "rfm", g, scoring) for g in ("champions", "lost")]


def _members(as_of: date, rows: list[tuple[str, str, float, date]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"as_of": as_of, "segment_id": s, "kind": "value", "user_id": u, "score": score, "since": since}
            for s, u, score, since in rows
        ],
        schema=MEMBERSHIP_SCHEMA,
    )


FEATURES = pa.table({"user_id": ["a", "b", "c"], "consent_personalization": [True, True, False]})
BEFORE = _members(
    date(2026, 10, 6),
    [
        ("rfm_champions", "a", 555.0, date(2026, 10, 5)),
        ("rfm_champions", "b", 555.0, date(2026, 10, 1)),
        ("rfm_champions", "c", 555.0, date(2026, 10, 6)),
    ],
)
TODAY = _members(D, [("rfm_lost", "a", 111.0, D), ("rfm_lost", "b", 111.0, D)])


def _rows(table: pa.Table) -> list[tuple]:
    return [(r["segment_id"], r["user_id"], r["since"]) for r in table.to_pylist()]


def test_no_hysteresis_passes_through():
    assert stabilize(TODAY, BEFORE, FEATURES, _defs(Stability()), D).equals(TODAY)


def test_min_stay_holds_recent_entrants_only_while_eligible():
    got = stabilize(TODAY, BEFORE, FEATURES, _defs(Stability(min_stay_days=3)), D)
    # a entered on 10-05: day 3 of its stay is 10-07, held; b's hold ended; c withdrew consent and leaves
    assert _rows(got) == [("rfm_champions", "a", date(2026, 10, 5)), ("rfm_lost", "b", D)]


@pytest.mark.parametrize("score, held", [(455.0, True), (355.0, False)])
def test_leave_margin(score, held):
    today = _members(D, [("rfm_lost", "b", 111.0, D)]).to_pylist()
    today[0]["score"], today[0]["segment_id"] = score, "rfm_lost"
    got = stabilize(
        pa.Table.from_pylist(today, schema=MEMBERSHIP_SCHEMA), BEFORE, FEATURES, _defs(Stability(leave_margin=1)), D
    )
    assert (("rfm_champions", "b", date(2026, 10, 1)) in _rows(got)) is held


def test_weekly_refresh_freezes_between_mondays():
    got = stabilize(TODAY, BEFORE, FEATURES, _defs(Stability(refresh="weekly")), D)
    assert _rows(got) == [("rfm_champions", "a", date(2026, 10, 5)), ("rfm_champions", "b", date(2026, 10, 1))]
    monday = date(2026, 10, 5)
    assert stabilize(TODAY, BEFORE, FEATURES, _defs(Stability(refresh="weekly")), monday).equals(TODAY)
