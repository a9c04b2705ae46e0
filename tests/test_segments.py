from datetime import date

import duckdb
import pyarrow as pa
import pytest

from assets.pyramid_map import SegmentDefinition
from assets.segments import (
    MEMBERSHIP_SCHEMA,
    sandboxed_connection,
    segment_membership,
    segment_overlap,
    segment_summary,
)
from assets.sql_guard import UnsafeExpression

AS_OF = date(2026, 10, 10)


def definition(segment_id: str, rule: str, kind: str = "value", min_size: int = 1) -> SegmentDefinition:
    return SegmentDefinition(id=segment_id, kind=kind, description="", owner="", rule=rule, min_size=min_size)


def features() -> pa.Table:
    return pa.table({
        "user_id": ["u1", "u2", "u3", "u4", "u5"],
        "as_of": [AS_OF] * 5,
        "consent_personalization": [True, True, False, None, True],
        "deposits_30d": [2, 1, 5, 5, None],
        "searches_7d": [1, 3, 1, 1, 0],
        "tenure_days": [400, 10, 10, 10, 20],
    })


def membership(rows: dict[str, list[str]]) -> pa.Table:
    pairs = [(segment_id, user_id) for segment_id, users in rows.items() for user_id in users]
    return pa.table({"segment_id": [p[0] for p in pairs], "user_id": [p[1] for p in pairs]})


def test_rule_membership_holds_only_consented_users_meeting_the_rule():
    definitions = [
        definition("steady_depositors", "deposits_30d >= 2"),
        definition("searchers", "searches_7d >= 1 AND tenure_days <= 30", kind="intent"),
        definition("nobody", "deposits_30d > 100"),
    ]
    result = segment_membership(features(), definitions, AS_OF)

    assert result.schema == MEMBERSHIP_SCHEMA
    # u3 (no consent) and u4 (consent unknown) never appear; u5's NULL deposits is not a match.
    assert [(r["segment_id"], r["kind"], r["user_id"]) for r in result.to_pylist()] == [
        ("searchers", "intent", "u2"),
        ("steady_depositors", "value", "u1"),
    ]
    assert set(result.column("as_of").to_pylist()) == {AS_OF}
    assert result.column("score").null_count == result.num_rows


def test_unsafe_rule_is_refused_before_it_runs():
    unsafe = definition("sneaky", "deposits_30d >= 2 OR (SELECT count(*) FROM read_csv('/etc/passwd')) > 0")
    with pytest.raises(UnsafeExpression, match="segment 'sneaky'"):
        segment_membership(features(), [definition("fine", "deposits_30d >= 2"), unsafe], AS_OF)
    with pytest.raises(UnsafeExpression, match="unknown column 'password'"):
        segment_membership(features(), [definition("unknown", "password = 'x'")], AS_OF)


def test_sandbox_reads_registered_arrow_but_no_files_and_stays_locked():
    con = sandboxed_connection()
    con.register("t", pa.table({"a": [1, 2, 3]}))
    assert con.sql("SELECT sum(a) FROM t").fetchall() == [(6,)]
    with pytest.raises(duckdb.Error, match="disabled"):
        con.sql("SELECT * FROM read_csv('/etc/hostname')").fetchall()
    with pytest.raises(duckdb.Error, match="locked"):
        con.execute("SET enable_external_access = true")


def test_summary_against_previous_snapshot():
    definitions = [
        definition("a", "true", min_size=3),
        definition("b", "true", kind="intent", min_size=1),
        definition("c", "true", min_size=2),
    ]
    previous = membership({"a": ["u1", "u2", "u3"], "b": ["u4"]})
    current = membership({"a": ["u2", "u3", "u5"], "c": ["u1"]})  # b has no members now

    summary = segment_summary(current, previous, 10, definitions, AS_OF).to_pylist()

    picked = [
        (r["segment_id"], r["kind"], r["size"], r["share"], r["min_size"], r["usable"],
         r["previous_size"], r["entered"], r["exited"], r["jaccard"])
        for r in summary
    ]
    assert picked == [
        # a: both = {u2, u3}, union = {u1, u2, u3, u5}
        ("a", "value", 3, pytest.approx(0.3), 3, True, 3, 1, 1, 0.5),
        ("b", "intent", 0, 0.0, 1, False, 1, 0, 1, 0.0),
        ("c", "value", 1, pytest.approx(0.1), 2, False, 0, 1, 0, 0.0),
    ]
    assert {r["eligible_users"] for r in summary} == {10}
    assert {r["as_of"] for r in summary} == {AS_OF}


def test_summary_on_first_as_of_has_no_stability():
    definitions = [definition("a", "true", min_size=2), definition("b", "true")]
    summary = segment_summary(membership({"a": ["u1", "u2"]}), None, 4, definitions, AS_OF).to_pylist()

    assert [(r["segment_id"], r["size"], r["share"], r["usable"]) for r in summary] == [
        ("a", 2, 0.5, True), ("b", 0, 0.0, False),
    ]
    for row in summary:
        assert (row["previous_size"], row["entered"], row["exited"], row["jaccard"]) == (None, None, None, None)


def test_summary_share_is_null_without_eligible_users():
    summary = segment_summary(membership({}), None, 0, [definition("a", "true")], AS_OF).to_pylist()
    assert (summary[0]["size"], summary[0]["share"]) == (0, None)


def test_overlap_of_every_pair():
    overlap = segment_overlap(membership({"a": ["u1", "u2", "u3"], "b": ["u2", "u3", "u4"], "c": ["u5"]}), AS_OF)

    assert [(r["segment_a"], r["segment_b"], r["both"], r["jaccard"]) for r in overlap.to_pylist()] == [
        ("a", "b", 2, 0.5),  # {u2, u3} / {u1, u2, u3, u4}
        ("a", "c", 0, 0.0),
        ("b", "c", 0, 0.0),
    ]
    assert set(overlap.column("as_of").to_pylist()) == {AS_OF}
