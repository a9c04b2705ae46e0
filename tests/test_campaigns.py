import hashlib
from datetime import date

import pyarrow as pa

from assets.campaigns import AUDIENCE_SCHEMA, arm_bucket, campaign_audiences
from assets.pyramid_map import Campaign, FrequencyCap

AS_OF = date(2026, 10, 10)


def campaign(campaign_id: str, segments: tuple[str, ...], priority: int = 10, holdout: float = 0.2) -> Campaign:
    return Campaign(
        id=campaign_id,
        context=f"context of {campaign_id}",
        segments=segments,
        touchpoints=("t",),
        priority=priority,
        holdout=holdout,
        frequency_cap=FrequencyCap(per_days=1, max=1),
    )


def md5_bucket(campaign_id: str, user_id: str) -> float:
    """Independent of the module: first 13 hex digits of the md5 as a fraction."""
    return int(hashlib.md5(f"{campaign_id}:{user_id}".encode()).hexdigest()[:13], 16) / 16**13


def test_arms_match_an_independent_md5_computation():
    users = [f"user-{n:04d}" for n in range(300)]
    membership = pa.table({"segment_id": ["s"] * len(users), "user_id": users})
    audiences = campaign_audiences(membership, [campaign("savings_nudge", ("s",), holdout=0.3)], AS_OF)

    expected = {u: "holdout" if md5_bucket("savings_nudge", u) < 0.3 else "treatment" for u in users}
    assert dict(zip(audiences.column("user_id").to_pylist(), audiences.column("arm").to_pylist())) == expected
    held_out = sum(arm == "holdout" for arm in expected.values())
    assert 45 < held_out < 135  # both arms really occur (30% of 300 expected)


def test_python_bucket_agrees_with_md5():
    assert arm_bucket("card_cashback", "u-42") == md5_bucket("card_cashback", "u-42")


def test_audience_takes_first_listed_segment_context_and_priority():
    membership = pa.table(
        {
            "segment_id": ["a", "b", "b", "c", "d"],
            "user_id": ["u1", "u1", "u2", "u3", "u4"],
        }
    )
    campaigns = [campaign("first", ("b", "a"), priority=20), campaign("second", ("c", "a"), priority=5)]

    audiences = campaign_audiences(membership, campaigns, AS_OF)

    assert audiences.schema == AUDIENCE_SCHEMA
    assert [
        (r["campaign_id"], r["user_id"], r["segment_id"], r["context"], r["priority"]) for r in audiences.to_pylist()
    ] == [
        ("first", "u1", "b", "context of first", 20),  # in a and b: b is listed first
        ("first", "u2", "b", "context of first", 20),
        ("second", "u1", "a", "context of second", 5),
        ("second", "u3", "c", "context of second", 5),
    ]  # u4 is only in d, which no campaign targets
    assert set(audiences.column("as_of").to_pylist()) == {AS_OF}
    for row in audiences.to_pylist():
        expected = "holdout" if md5_bucket(row["campaign_id"], row["user_id"]) < 0.2 else "treatment"
        assert row["arm"] == expected


def test_no_members_gives_an_empty_audience():
    empty = pa.table({"segment_id": pa.array([], pa.string()), "user_id": pa.array([], pa.string())})
    audiences = campaign_audiences(empty, [campaign("first", ("a",))], AS_OF)
    assert audiences.num_rows == 0 and audiences.schema == AUDIENCE_SCHEMA
