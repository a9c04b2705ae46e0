"""A/A campaigns (`treated: false`): holdouts by hash, no exports, goal rows `aa_ok` / `aa_failed`, never `met`."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date

import polars as pl
import pyarrow as pa
import pytest
from rich.console import Console

from assets.decisions import with_aa_checks
from assets.goal_cohort import GOAL_USER_OUTCOMES_SCHEMA, goal_to_date
from assets.pyramid_map import Campaign, FrequencyCap, Goal, Touchpoint
from assets.scorecard_goals import goals_section
from assets.touchpoints import touchpoint_exports
from pipelines.summary import _goals_table
from tests.test_goals import outcome_rows

DS = date(2026, 10, 10)
TREATED = Campaign("nudge", "", ("s",), ("email",), 10, 1 / 3, FrequencyCap(1, 1))
AA = replace(TREATED, id="aa", treated=False)
GOALS = [
    Goal("real", "engagement", "deposit_rate", "nudge", 0.15, ()),
    Goal("check", "engagement", "deposit_rate", "aa", 0.15, ()),
]


def _rows(statuses: list[str], intervals: list[tuple[float | None, float | None]], campaign: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "campaign_id": [campaign] * len(statuses),
            "status": statuses,
            "ci_low": [low for low, _ in intervals],
            "ci_high": [high for _, high in intervals],
        },
        schema={"campaign_id": pl.String, "status": pl.String, "ci_low": pl.Float64, "ci_high": pl.Float64},
    )


def test_aa_status_from_the_interval():
    statuses = ["met", "inconclusive", "not_met", "breached", "ok", "no_data", "srm_fail", "inconclusive"]
    intervals = [(0.1, 0.5), (-0.2, 0.3), (-0.9, -0.4), (0.0, 0.2), (-0.1, 0.0), (None, None), (0.3, 0.9), (None, None)]
    checked = with_aa_checks(_rows(statuses, intervals, "aa"), ["aa"])["status"].to_list()
    assert checked == ["aa_failed", "aa_ok", "aa_failed", "aa_ok", "aa_ok", "no_data", "srm_fail", "inconclusive"]
    untouched = with_aa_checks(_rows(statuses, intervals, "nudge"), ["aa"])["status"].to_list()
    assert untouched == statuses  # a treated campaign keeps its statuses


def _outcomes(campaign: str, goal: str, treatment: dict, holdout: dict) -> list[dict]:
    return outcome_rows(DS, goal, "deposit_rate", campaign, "treatment", treatment) + outcome_rows(
        DS, goal, "deposit_rate", campaign, "holdout", holdout
    )


def test_goal_to_date_of_an_aa_campaign_is_a_check_not_a_verdict():
    # The same clear difference in both campaigns: 9 of 10 days under "treatment", 1 of 10 in the holdout.
    treatment = {f"t{i}": (5, 5 if i % 2 else 4) for i in range(200)}  # 900 success days of 1000
    holdout = {f"h{i}": (5, 1 if i % 2 else 0) for i in range(100)}  # 50 of 500
    rows = _outcomes("nudge", "real", treatment, holdout) + _outcomes("aa", "check", treatment, holdout)
    table = goal_to_date(pa.Table.from_pylist(rows, schema=GOAL_USER_OUTCOMES_SCHEMA), DS, GOALS, [TREATED, AA])
    by_goal = {r["goal_id"]: r for r in table.to_pylist() if r["kind"] == "goal"}
    for row in by_goal.values():
        assert row["lift"] == pytest.approx((900 / 1000) / (50 / 500) - 1)  # 8.0 by hand
        assert row["ci_low"] > 0
    assert by_goal["real"]["status"] == "met"
    assert by_goal["check"]["status"] == "aa_failed"  # an A/A difference is a failed check, never `met`

    # No difference: 2 success days of 5 for everyone; lift 0, the interval covers zero.
    same = {f"t{i}": (5, 2) for i in range(20)}, {f"h{i}": (5, 2) for i in range(10)}
    rows = _outcomes("aa", "check", *same)
    table = goal_to_date(pa.Table.from_pylist(rows, schema=GOAL_USER_OUTCOMES_SCHEMA), DS, GOALS[1:], [AA])
    (row,) = [r for r in table.to_pylist() if r["kind"] == "goal"]
    assert row["lift"] == pytest.approx(0.0)
    assert row["ci_low"] <= 0 <= row["ci_high"]
    assert row["status"] == "aa_ok"
    assert not math.isnan(row["srm_p_value"])


def test_an_aa_campaign_is_exported_nowhere():
    audiences = pa.table(
        {
            "as_of": [DS] * 4,
            "campaign_id": ["aa", "aa", "nudge", "nudge"],
            "user_id": ["u1", "u2", "u2", "u3"],
            "arm": ["treatment", "holdout", "treatment", "treatment"],
            "priority": [10] * 4,
        }
    )
    exports = touchpoint_exports(audiences, [TREATED, AA], [Touchpoint("email", "email", 168)], None, DS)
    assert [(r["user_id"], r["campaign_id"]) for r in exports["email"].to_pylist()] == [
        ("u2", "nudge"),
        ("u3", "nudge"),
    ]


def test_treated_is_declared_in_the_map():
    assert TREATED.treated is True
    assert AA.treated is False
    assert "treated" not in repr(TREATED)  # the repr names what a campaign targets, as before


def _goal_frame(campaign: str, status: str) -> pl.DataFrame:
    row = {
        "ds": DS,
        "goal_id": "check",
        "metric": "deposit_rate",
        "kind": "goal",
        "campaign_id": campaign,
        "lift": 0.01,
        "ci_low": -0.2,
        "ci_high": 0.25,
        "target": 0.15,
        "status": status,
        "treatment_users": 200,
        "holdout_users": 100,
        "srm_ok": True,
        "srm_p_value": 1.0,
    }
    return pl.DataFrame([row])


def test_the_scorecard_heads_an_aa_goal_as_a_check():
    page = goals_section(_goal_frame("aa", "aa_ok"), DS, ["aa"])
    assert "A/A check: nobody treated, the interval should cover zero" in page
    assert '<span class="ok">aa_ok</span>' in page
    assert "target +15.0%" not in page
    treated = goals_section(_goal_frame("nudge", "inconclusive"), DS, ["aa"])
    assert "target +15.0%" in treated and "A/A check" not in treated


def test_the_summary_shows_an_aa_goal_as_a_check():
    goal = {
        "goal_id": "check",
        "metric": "deposit_rate",
        "target": 0.15,
        "status": "aa_ok",
        "aa": True,
        "planted": None,
        "treatment": 0.4,
        "holdout": 0.4,
        "lift": 0.0,
        "ci_low": -0.2,
        "ci_high": 0.25,
        "ci_low_unadjusted": -0.2,
        "ci_high_unadjusted": 0.25,
        "narrower": None,
    }
    console = Console(width=120, record=True)
    for table in _goals_table([goal]):
        console.print(table)
    text = console.export_text()
    assert "A/A check" in text and "aa_ok" in text and "+15.0%" not in text
