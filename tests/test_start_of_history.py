"""Segments at the start of history: incomplete windows are NULL, rules read monotone sums on their lower
bound, RFM scores the covered part, lifecycle does not call an unseen user `churned`, summaries say so."""

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from assets.coverage import lower_bound_rule, rule_windows, segment_windows
from assets.features import monotone_windowed
from assets.pyramid_map import SegmentDefinition, load_map
from assets.pyramid_map.segments import LIFECYCLE_STAGES, RFM_GROUPS, LifecycleScoring, RfmScoring
from assets.segments import segment_membership, segment_summary
from tests.test_segments import scored_definitions

AS_OF = date(2026, 10, 10)
MONOTONE = monotone_windowed(load_map())  # the sample map's windowed sums read on their lower bound
LIFECYCLE = LifecycleScoring(
    new_days=30, active_days=7, at_risk_days=30, dormant_days=90, stages=LIFECYCLE_STAGES, min_size=1
)
RFM = RfmScoring(window_days=90, groups=RFM_GROUPS, min_size=1)
COLUMNS = {"deposits_30d", "deposits_history", "searches_7d", "searches_history", "avg_card_amount_30d"}


def rule(segment_id: str, text: str) -> SegmentDefinition:
    return SegmentDefinition(id=segment_id, kind="value", description="", owner="", rule=text, min_size=1)


def scored(method: str, names, scoring) -> list[SegmentDefinition]:
    return scored_definitions(method, names, scoring, "behavioral")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("deposits_30d >= 2", "COALESCE(deposits_30d, deposits_history) >= 2"),
        ("2 < deposits_30d", "2 < COALESCE(deposits_30d, deposits_history)"),
        (
            "deposits_30d >= 2 AND (searches_7d > 0 OR tenure_days < 3)",
            "COALESCE(deposits_30d, deposits_history) >= 2 AND (COALESCE(searches_7d, searches_history) > 0 "
            "OR tenure_days < 3)",
        ),
        # a rise could make these false, or they are not sums: left NULL while incomplete
        ("deposits_30d < 2", "deposits_30d < 2"),
        ("NOT deposits_30d >= 2", "NOT deposits_30d >= 2"),
        ("deposits_30d BETWEEN 1 AND 3", "deposits_30d BETWEEN 1 AND 3"),
        ("deposits_30d + 1 >= 2", "deposits_30d + 1 >= 2"),
        ("deposits_30d >= searches_7d", "deposits_30d >= searches_7d"),
        ("avg_card_amount_30d > 3", "avg_card_amount_30d > 3"),
        ("CASE WHEN deposits_30d >= 2 THEN TRUE END", "CASE WHEN deposits_30d >= 2 THEN TRUE END"),
    ],
)
def test_only_monotone_atoms_read_the_lower_bound(text, expected):
    assert lower_bound_rule(text, COLUMNS, MONOTONE) == expected


def test_without_covered_columns_the_rule_is_unchanged():
    assert lower_bound_rule("deposits_30d >= 2", {"deposits_30d"}, MONOTONE) == "deposits_30d >= 2"


def test_windows_a_segment_reads():
    assert rule_windows("deposits_30d >= 2 AND complete_90d AND searches_7d > 0 AND tenure_days < 3") == {7, 30}
    assert rule_windows("deposits_history >= 2") == set()
    assert segment_windows(scored("rfm", ["lost"], RFM)[0]) == {90}
    assert segment_windows(scored("lifecycle", ["churned"], LIFECYCLE)[0]) == {90}


def test_rule_on_an_incomplete_window_selects_only_certain_members():
    """Day 5 of history: deposits_30d is NULL. Two deposits so far prove 'at least two in 30 days'; one
    does not, and 'fewer than two' can be proven by nobody."""
    features = pa.table(
        {
            "user_id": ["two", "one", "none"],
            "as_of": [AS_OF] * 3,
            "consent_personalization": [True] * 3,
            "deposits_30d": pa.array([None] * 3, pa.int64()),
            "deposits_history": pa.array([2, 1, 0], pa.int64()),
            "history_days": pa.array([5] * 3, pa.int64()),
        }
    )
    definitions = [rule("at_least_two", "deposits_30d >= 2"), rule("fewer_than_two", "deposits_30d < 2")]
    members = segment_membership(features, definitions, AS_OF, monotone=MONOTONE).to_pylist()
    assert [(r["segment_id"], r["user_id"]) for r in members] == [("at_least_two", "two")]


def lifecycle_features(history_days: int | None) -> pa.Table:
    rows = [  # user, tenure, days since last seen, days since last transaction
        ("old_unseen", 400, None, None),  # signed up long before history began, not seen since
        ("old_seen_3d", 400, 3, None),
        ("old_txn_20d", 400, None, 20),
        ("new_unseen", 5, None, None),
    ]
    noon = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 12, tzinfo=UTC)
    return pa.table(
        {
            "user_id": [r[0] for r in rows],
            "as_of": [AS_OF] * len(rows),
            "consent_personalization": [True] * len(rows),
            "tenure_days": pa.array([r[1] for r in rows], pa.int64()),
            "days_since_last_seen": pa.array([r[2] for r in rows], pa.int64()),
            "last_txn_at": pa.array(
                [None if r[3] is None else noon - timedelta(days=r[3]) for r in rows], pa.timestamp("us", tz="UTC")
            ),
            "history_days": pa.array([history_days] * len(rows), pa.int64()),
        }
    )


@pytest.mark.parametrize(
    ("history_days", "old_unseen"),
    [(1, None), (30, None), (89, None), (90, "churned"), (365, "churned"), (None, "churned")],
)
def test_an_established_user_is_not_churned_before_the_dormant_window_is_covered(history_days, old_unseen):
    definitions = scored("lifecycle", LIFECYCLE_STAGES, LIFECYCLE)
    members = segment_membership(lifecycle_features(history_days), definitions, AS_OF, monotone=MONOTONE).to_pylist()
    got = {r["user_id"]: r["segment_id"].removeprefix("lifecycle_") for r in members}
    expected = {"old_seen_3d": "active", "old_txn_20d": "at_risk", "new_unseen": "new"}
    assert got == expected | ({"old_unseen": old_unseen} if old_unseen else {})


def test_rfm_scores_the_covered_part_of_an_incomplete_window():
    noon = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 12, tzinfo=UTC)
    features = pa.table(
        {
            "user_id": ["a", "b", "c"],
            "as_of": [AS_OF] * 3,
            "consent_personalization": [True] * 3,
            "last_txn_at": pa.array([noon, noon, None], pa.timestamp("us", tz="UTC")),
            "txns_90d": pa.array([None] * 3, pa.int64()),
            "balance_in_90d": pa.array([None] * 3, pa.float64()),
            "balance_out_90d": pa.array([None] * 3, pa.float64()),
            "txns_history": pa.array([1, 3, 0], pa.int64()),
            "balance_in_history": [10.0, 30.0, 0.0],
            "balance_out_history": [0.0, 0.0, 0.0],
            "days_since_last_seen": pa.array([None] * 3, pa.int64()),
            "tenure_days": pa.array([400] * 3, pa.int64()),
        }
    )
    members = segment_membership(features, scored("rfm", RFM_GROUPS, RFM), AS_OF, monotone=MONOTONE).to_pylist()
    # two scored users, recency tied (R = 5), F and M: cume_dist 1/2 -> 3, 1 -> 5
    assert {r["user_id"]: r["score"] for r in members} == {"a": 533.0, "b": 555.0}


def test_summary_says_which_segments_read_an_incomplete_window():
    definitions = [
        rule("thirty", "deposits_30d >= 2"),
        rule("seven", "searches_7d >= 1"),
        rule("profile", "tenure_days < 30"),
        *scored("rfm", ["champions"], RFM),
        *scored("lifecycle", ["churned"], LIFECYCLE),
    ]
    members = pa.table({"segment_id": pa.array([], pa.string()), "user_id": pa.array([], pa.string())})
    flags = {
        days: {
            r["segment_id"]: r["window_complete"]
            for r in segment_summary(members, None, 0, definitions, AS_OF, history_days=days).to_pylist()
        }
        for days in (7, 30, 90, None)
    }
    assert flags[7] == {
        "thirty": False,
        "seven": True,
        "profile": True,
        "rfm_champions": False,
        "lifecycle_churned": False,
    }
    assert flags[30] == {
        "thirty": True,
        "seven": True,
        "profile": True,
        "rfm_champions": False,
        "lifecycle_churned": False,
    }
    assert set(flags[90].values()) == set(flags[None].values()) == {True}
    summary = segment_summary(members, None, 0, definitions, AS_OF, history_days=7).to_pylist()
    assert {r["history_days"] for r in summary} == {7}


def test_covered_columns_and_averages_are_in_the_column_lineage():
    from assets.lineage import column_lineage

    fed = column_lineage(load_map())[("transactions", "amount")]
    assert {"deposit_amount_7d", "deposit_amount_history", "balance_in_history", "avg_deposit_amount_7d"} <= fed
    assert {"avg_deposit_amount_history", "avg_card_amount_history"} <= fed
