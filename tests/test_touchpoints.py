from datetime import date

import pyarrow as pa
import pytest

from assets.pyramid_map import Campaign, FrequencyCap, Touchpoint
from assets.touchpoints import EXPORT_SCHEMA, freshness_report, touchpoint_exports

AS_OF = date(2026, 10, 10)
TOUCHPOINTS = [
    Touchpoint("email", "email", 168),
    Touchpoint("modal", "web", 24),
    Touchpoint("widget", "app", 24),
    Touchpoint("sms", "sms", 24),
]


def campaign(campaign_id: str, touchpoints: tuple[str, ...], priority: int, per_days: int, cap: int) -> Campaign:
    return Campaign(
        id=campaign_id,
        context="",
        segments=("s",),
        touchpoints=touchpoints,
        priority=priority,
        holdout=0.2,
        frequency_cap=FrequencyCap(per_days=per_days, max=cap),
    )


CAMPAIGNS = [
    campaign("hi", ("widget", "modal"), priority=20, per_days=3, cap=1),  # map order: widget before modal
    campaign("mid", ("email", "modal"), priority=10, per_days=7, cap=2),
    campaign("alpha", ("email",), priority=10, per_days=1, cap=1),  # ties with mid on email
    campaign("lo", ("widget",), priority=5, per_days=1, cap=1),
]
PRIORITY = {c.id: c.priority for c in CAMPAIGNS}


def audiences(rows: list[tuple[str, str, str]]) -> pa.Table:
    return pa.table(
        {
            "as_of": [AS_OF] * len(rows),
            "campaign_id": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "arm": [r[2] for r in rows],
            "priority": [PRIORITY[r[0]] for r in rows],
        }
    )


def previous(rows: list[tuple[date, str, str, str]]) -> pa.Table:
    return pa.table(
        {
            "as_of": [r[0] for r in rows],
            "touchpoint_id": [r[1] for r in rows],
            "user_id": [r[2] for r in rows],
            "campaign_id": [r[3] for r in rows],
        }
    )


def exported(tables: dict[str, pa.Table]) -> dict[str, list[tuple[str, str]]]:
    return {tp: [(r["user_id"], r["campaign_id"]) for r in t.to_pylist()] for tp, t in tables.items()}


def test_caps_then_priorities():
    audience = audiences(
        [
            ("hi", "u1", "treatment"),
            ("mid", "u1", "treatment"),
            ("lo", "u1", "treatment"),
            ("hi", "u2", "treatment"),
            ("lo", "u2", "treatment"),
            ("hi", "u3", "treatment"),
            ("mid", "u4", "treatment"),
            ("hi", "u5", "holdout"),
            ("mid", "u5", "treatment"),
            ("alpha", "u6", "treatment"),
            ("mid", "u6", "treatment"),
            ("mid", "u7", "treatment"),
        ]
    )
    sent = previous(
        [
            (date(2026, 10, 8), "widget", "u2", "hi"),  # inside hi's 3 days (10-08 .. 10-10): capped
            (date(2026, 10, 7), "modal", "u3", "hi"),  # outside hi's 3 days: not counted
            (date(2026, 10, 5), "email", "u4", "mid"),  # inside mid's 7 days: one of two used
            (date(2026, 10, 10), "email", "u4", "mid"),  # today's own earlier output (a re-run): not counted
            (date(2026, 10, 4), "email", "u7", "mid"),
            (date(2026, 10, 9), "modal", "u7", "mid"),  # mid's two for u7 are used up
        ]
    )

    result = touchpoint_exports(audience, CAMPAIGNS, TOUCHPOINTS, sent, AS_OF)

    assert exported(result) == {
        # u6: alpha and mid tie at 10 on email, alpha < mid; u7 is capped everywhere
        "email": [("u1", "mid"), ("u4", "mid"), ("u5", "mid"), ("u6", "alpha")],
        # u1: hi's single export went to widget (its first touchpoint), so modal is free for mid
        "modal": [("u1", "mid"), ("u5", "mid"), ("u6", "mid")],
        # u1: hi beats lo; u2: hi is capped, lo gets the slot; u5 is in hi's holdout
        "widget": [("u1", "hi"), ("u2", "lo"), ("u3", "hi")],
        "sms": [],
    }
    for touchpoint in TOUCHPOINTS:
        table = result[touchpoint.id]
        assert table.schema == EXPORT_SCHEMA
        assert set(table.column("channel").to_pylist()) <= {touchpoint.channel}
        assert set(table.column("as_of").to_pylist()) <= {AS_OF}
    assert result["widget"].column("priority").to_pylist() == [20, 5, 20]


def test_without_previous_exports_only_todays_cap_applies():
    audience = audiences([("hi", "u1", "treatment"), ("mid", "u2", "treatment")])
    result = exported(touchpoint_exports(audience, CAMPAIGNS, TOUCHPOINTS, None, AS_OF))
    assert result == {"email": [("u2", "mid")], "modal": [("u2", "mid")], "widget": [("u1", "hi")], "sms": []}


def test_freshness_report():
    report = {r["touchpoint_id"]: r for r in freshness_report(TOUCHPOINTS[:2], 24, run_allowance_hours=4)}

    assert report["email"]["worst_case_age_hours"] == 28.0
    assert report["email"]["ok"] is True
    assert report["modal"]["ok"] is False
    assert report["modal"]["freshness_hours"] == 24.0
    assert "20 h" in report["modal"]["message"]  # 24 h need minus 4 h to land: run at least every 20 h

    hourly = freshness_report(TOUCHPOINTS[1:2], 1, run_allowance_hours=2)[0]
    assert (hourly["worst_case_age_hours"], hourly["ok"]) == (3.0, True)


@pytest.mark.parametrize("interval, ok", [(20, True), (20.5, False)])
def test_freshness_boundary(interval, ok):
    assert freshness_report(TOUCHPOINTS[1:2], interval, run_allowance_hours=4)[0]["ok"] is ok
