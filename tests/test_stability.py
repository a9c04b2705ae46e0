"""Stable audiences: min_stay_days, leave_margin and weekly refresh on hand-made memberships; stability before
and after hysteresis in the segment summary and the segment_churn check."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pyarrow as pa
import pytest

from assets.pyramid_map import RfmScoring, SegmentDefinition, Stability
from assets.segments import MEMBERSHIP_SCHEMA, churn_metadata, churning_segments, segment_summary
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


# Stabilized: champions {a, b} on both days. Raw (today's scoring alone): champions {a}, lost {b} the day
# before; champions {b}, lost {a} today. Rule segment r: {a} then {a, c}, no hysteresis.
RULE = SegmentDefinition("r", "value", "", "", "x > 0", 1, "rule")


def _pairs(as_of: date, rows: dict[str, list[str]]) -> pa.Table:
    return _members(as_of, [(s, u, None, as_of) for s, users in rows.items() for u in users])


def _summary(rule: SegmentDefinition = RULE) -> pa.Table:
    before, today = date(2026, 10, 6), D
    return segment_summary(
        _pairs(today, {"rfm_champions": ["a", "b"], "r": ["a", "c"]}),
        _pairs(before, {"rfm_champions": ["a", "b"], "r": ["a"]}),
        3,
        [rule, *_defs(Stability(min_stay_days=3))],
        today,
        raw=(
            _pairs(today, {"rfm_champions": ["b"], "rfm_lost": ["a"]}),
            _pairs(before, {"rfm_champions": ["a"], "rfm_lost": ["b"]}),
        ),
    )


def test_summary_shows_stability_before_and_after_hysteresis():
    pick = ("size", "entered", "exited", "jaccard", "churn_share")
    rows = {r["segment_id"]: r for r in _summary().to_pylist()}
    # champions: {a, b} both days after; raw {a} -> {b}: 1 entered, 1 exited, Jaccard 0/2, churn 2/1
    assert [rows["rfm_champions"][k] for k in pick] == [2, 0, 0, 1.0, 0.0]
    assert [rows["rfm_champions"][f"raw_{k}"] for k in pick] == [1, 1, 1, 0.0, 2.0]
    # lost: empty both days after (Jaccard 0/0, churn over 0: NULL); raw {b} -> {a}
    assert [rows["rfm_lost"][k] for k in pick] == [0, 0, 0, None, None]
    assert [rows["rfm_lost"][f"raw_{k}"] for k in pick] == [1, 1, 1, 0.0, 2.0]
    # the rule segment has no hysteresis: raw = stabilized; {a} -> {a, c}: Jaccard 1/2, churn 1/1
    assert [rows["r"][k] for k in pick] == [rows["r"][f"raw_{k}"] for k in pick] == [2, 1, 0, 0.5, 1.0]


def test_summary_without_raw_memberships_repeats_the_stabilized_figures():
    summary = segment_summary(_pairs(D, {"r": ["a", "c"]}), _pairs(date(2026, 10, 6), {"r": ["a"]}), 3, [RULE], D)
    row = summary.to_pylist()[0]
    assert (row["raw_size"], row["raw_entered"], row["raw_exited"], row["raw_jaccard"]) == (2, 1, 0, 0.5)


def test_churn_check_before_and_after_judges_only_segments_usable_the_day_before():
    summary = _summary()
    assert churning_segments(summary, 0.5) == ["r"]
    assert churning_segments(summary, 0.5, "raw_churn_share") == ["r", "rfm_champions", "rfm_lost"]
    # r had 1 member the day before: below a min_size of 2, its churn is not judged
    assert churning_segments(_summary(replace(RULE, min_size=2)), 0.5) == []
    assert churn_metadata(summary) == {
        "raw_churn_share/rfm_champions": 2.0,
        "churn_share/rfm_champions": 0.0,
        "raw_jaccard/rfm_champions": 0.0,
        "jaccard/rfm_champions": 1.0,
        "raw_churn_share/rfm_lost": 2.0,
        "raw_jaccard/rfm_lost": 0.0,
    }
