import hashlib
from dataclasses import replace
from datetime import date, timedelta

import pyarrow as pa
import pytest

from assets.campaigns import AUDIENCE_SCHEMA, admitted_by_context, arm_bucket, campaign_audiences
from assets.pyramid_map import Campaign, Context, FrequencyCap
from assets.sql_guard import UnsafeExpression

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


# --- contexts that decide -------------------------------------------------------------------------

PAYDAY = Context(id="payday", description="Around payday", when="day_of_month >= 25")
LAPSING = Context(id="lapsing", description="Not seen for a few days", when="days_since_last_seen between 3 and 10")


def features_of(rows: dict[str, int | None]) -> pa.Table:
    return pa.table({"user_id": list(rows), "days_since_last_seen": pa.array(list(rows.values()), pa.int64())})


def test_contexts_admit_users_by_feature_and_calendar_and_record_the_first_that_held():
    membership = pa.table({"segment_id": ["s"] * 4, "user_id": ["u1", "u2", "u3", "u4"]})
    features = features_of({"u1": 1, "u2": 5, "u3": None, "u4": 30})
    deciding = replace(campaign("winback", ("s",)), contexts=(LAPSING, PAYDAY))
    # the audiences of 2026-10-10 are served on Sunday 2026-10-11: not payday
    on_day = campaign_audiences(membership, [deciding], AS_OF, features)
    assert [(r["user_id"], r["context_id"]) for r in on_day.to_pylist()] == [("u2", "lapsing")]
    # served on 2026-10-25 (payday): everyone is admitted; lapsing is listed first, so u2 keeps it
    late = campaign_audiences(membership, [deciding], date(2026, 10, 24), features)
    assert [(r["user_id"], r["context_id"]) for r in late.to_pylist()] == [
        ("u1", "payday"),
        ("u2", "lapsing"),
        ("u3", "payday"),  # a NULL feature satisfies no condition, but the calendar one holds
        ("u4", "payday"),
    ]


def test_day_of_week_is_the_serving_days():
    membership = pa.table({"segment_id": ["s"], "user_id": ["u1"]})
    weekend = replace(campaign("w", ("s",)), contexts=(Context(id="weekend", when="day_of_week in (6, 7)"),))
    days = [date(2026, 10, d) for d in range(9, 13)]
    served = {
        d.isoweekday(): campaign_audiences(membership, [weekend], d, features_of({"u1": 0})).num_rows for d in days
    }
    # as-of Fri 9th -> served Sat; Sat 10th -> Sun; Sun 11th -> Mon; Mon 12th -> Tue
    assert served == {5: 1, 6: 1, 7: 0, 1: 0}


def test_campaigns_without_contexts_keep_every_segment_member_and_no_context_id():
    membership = pa.table({"segment_id": ["s", "s"], "user_id": ["u1", "u2"]})
    deciding = replace(campaign("d", ("s",)), contexts=(LAPSING,))
    audiences = campaign_audiences(membership, [campaign("plain", ("s",)), deciding], AS_OF, features_of({"u1": 5}))
    assert [(r["campaign_id"], r["user_id"], r["context_id"]) for r in audiences.to_pylist()] == [
        ("d", "u1", "lapsing"),
        ("plain", "u1", None),
        ("plain", "u2", None),
    ]
    admitted = admitted_by_context(membership, audiences, [campaign("plain", ("s",)), deciding])
    assert admitted == {
        "d": {"segment_members": 2, "admitted": 1, "admitted_share": 0.5, "per_context": {"lapsing": 1}}
    }


def test_an_unsafe_context_is_refused_before_it_runs():
    membership = pa.table({"segment_id": ["s"], "user_id": ["u1"]})
    hostile = replace(campaign("h", ("s",)), contexts=(Context(id="x", when="user_id IN (SELECT 1)"),))
    with pytest.raises(UnsafeExpression, match="campaign 'h' context 'x'"):
        campaign_audiences(membership, [hostile], AS_OF, features_of({"u1": 1}))


def test_a_run_with_contexts_admits_per_user_and_day_and_the_summary_shows_the_share(tmp_path):
    import dagster as dg
    import polars as pl

    from assets.lake import Lake
    from assets.pyramid_map import DEFAULT_MAP_PATH, load_map
    from pipelines.definitions import NIGHTLY_JOB, build_definitions
    from pipelines.resources import PyramidResource
    from pipelines.runner import QUIET
    from pipelines.sample.generate import generate_sample
    from pipelines.summary import summary_data

    tips = "  - id: budget_tips\n"
    contexts = (
        '    contexts:\n      - {id: weekday, description: Weekdays, when: "day_of_week <= 5"}\n'
        '      - {id: recent, description: Seen yesterday or today, when: "days_since_last_seen <= 1"}\n'
    )
    text = DEFAULT_MAP_PATH.read_text()
    assert text.count(tips) == 1
    map_path = tmp_path / "pyramid.yaml"
    map_path.write_text(text.replace(tips, tips + contexts))
    pyramid_map = load_map(map_path)
    generate_sample(tmp_path / "landing", users=400, days=2, seed=3, pyramid_map=pyramid_map)
    resource = PyramidResource(data_root=str(tmp_path), map_path=str(map_path))
    job = build_definitions(pyramid_map, resource).resolve_job_def(NIGHTLY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    days = [pyramid_map.start_date, pyramid_map.start_date + timedelta(days=1)]  # served Friday, then Saturday
    for day in days:
        assert job.execute_in_process(partition_key=day.isoformat(), instance=instance, run_config=QUIET).success
    lake = Lake(tmp_path)

    def table(layer: str, name: str, day: date) -> pl.DataFrame:
        return pl.read_parquet(lake.partition_file(layer, name, day))

    tips_segments = ["recent_searchers", "new_users"]
    for day, admitted_by in zip(days, ["weekday", "recent"]):
        members = set(
            table("segments", "segment_membership", day).filter(pl.col("segment_id").is_in(tips_segments))["user_id"]
        )
        recent = set(table("actionable", "user_features", day).filter(pl.col("days_since_last_seen") <= 1)["user_id"])
        expected = members if admitted_by == "weekday" else members & recent
        audience = table("campaigns", "audiences", day).filter(pl.col("campaign_id") == "budget_tips")
        assert set(audience["user_id"]) == expected and 0 < len(expected)
        assert set(audience["context_id"]) == {admitted_by}
    others = table("campaigns", "audiences", days[1]).filter(pl.col("campaign_id") != "budget_tips")
    assert others["context_id"].null_count() == others.height > 0
    contexts = summary_data(lake, pyramid_map)["contexts"]
    assert contexts == [
        {
            "campaign_id": "budget_tips",
            "segment_members": len(members),
            "admitted": len(expected),
            "admitted_share": round(len(expected) / len(members), 4),
            "per_context": {"weekday": 0, "recent": len(expected)},
        }
    ]


def test_a_context_on_the_last_channel_used_admits_by_the_users_latest_non_impression_event():
    from assets.features import user_features
    from assets.lake import connect
    from assets.measures import user_daily
    from assets.pyramid_map import load_map
    from tests.test_features import PROFILES, at, events_table, txns_table

    events = events_table(
        [
            ("u1", "page_view", at(9, 8), "s1", None, "web"),
            ("u1", "screen_view", at(10, 9), "s2", None, "app"),  # u1 last used the app
            ("u2", "screen_view", at(9, 8), "s3", None, "app"),
            ("u2", "page_view", at(10, 7), "s4", None, "web"),
            ("u2", "impression", at(10, 20), None, None, "email"),  # shown, not used: u2 last used the web
        ]
    )
    con = connect()
    sample = load_map()
    daily = user_daily(con, sample, events, txns_table([]))
    features = user_features(con, sample, daily, PROFILES, None, AS_OF, [7, 30, 90])
    membership = pa.table({"segment_id": ["s"] * 3, "user_id": ["u1", "u2", "u3"]})
    on_web = replace(campaign("web", ("s",)), contexts=(Context(id="web_users", when="last_channel = 'web'"),))
    audiences = campaign_audiences(membership, [on_web], AS_OF, features)
    assert [(r["user_id"], r["context_id"]) for r in audiences.to_pylist()] == [("u2", "web_users")]
