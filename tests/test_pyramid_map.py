"""The map loader: the sample map's contents, its defaults, and the exact error lines of broken maps."""

from pathlib import Path

import pytest
import yaml

from assets.pyramid_map import (
    DEFAULT_MAP_PATH,
    Campaign,
    FrequencyCap,
    MapError,
    Metric,
    PyramidMap,
    Touchpoint,
    load_map,
)

BASE = (Path(__file__).parent / "fixtures" / "pyramid_map_base.yaml").read_text()  # frozen: the lines are pinned
SEGMENT_IDS = (
    "steady_depositors, card_regulars, recent_searchers, new_users, high_inflow, rfm_champions, rfm_loyal, "
    "rfm_potential_loyalists, rfm_new, rfm_promising, rfm_need_attention, rfm_about_to_sleep, rfm_at_risk, "
    "rfm_cannot_lose_them, rfm_hibernating, rfm_lost, lifecycle_new, lifecycle_active, lifecycle_at_risk, "
    "lifecycle_dormant, lifecycle_churned"
)
CAMPAIGN_IDS = "savings_nudge, card_cashback, budget_tips"
METRIC_IDS = "budget_tool_rate, card_spend_rate, deposit_rate, unsubscribe_rate, weekly_active_share"
DAILY = (
    "events, sessions, page_views, screen_views, searches, feature_uses, budget_tool_uses, impressions, clicks, "
    "conversions, unsubscribes, deposits, card_payments, transfers_in, transfers_out, txns, deposit_amount, "
    "card_amount, transfer_in_amount, transfer_out_amount"
)
RULES_MAY = "rules may use the feature columns listed in docs/contracts.md"

# name: (text edits of the sample map, the expected problems as "line: key path: message")
CASHBACK_CONTEXT = "    context: Regular savers see a cashback offer that invites them to pay with their card.\n"
BROKEN = {
    "unknown_campaign_in_goal": (
        [("campaign: savings_nudge", "campaign: savings_nudges")],
        [f"47: goals[0].campaign: unknown campaign 'savings_nudges'; defined: {CAMPAIGN_IDS}"],
    ),
    "unknown_segment_in_campaign": (
        [("segments: [card_regulars]", "segments: [card_regular]")],
        [f"80: campaigns[0].segments: unknown segment 'card_regular'; defined: {SEGMENT_IDS}"],
    ),
    "unknown_touchpoint_in_campaign": (
        [("touchpoints: [in_app_widget]\n", "touchpoints: [in_app_widgets]\n")],
        [
            "95: campaigns[2].touchpoints: unknown touchpoint 'in_app_widgets'; defined: weekly_email, home_modal, "
            "in_app_widget"
        ],
    ),
    "unknown_guardrail": (
        [("guardrails: [unsubscribe_rate]", "guardrails: [unsub_rate]")],
        [f"49: goals[0].guardrails: unknown metric 'unsub_rate'; defined: {METRIC_IDS}"],
    ),
    "unknown_goal_metric": (
        [("metric: card_spend_rate", "metric: card_rate")],
        [f"52: goals[1].metric: unknown metric 'card_rate'; defined: {METRIC_IDS}"],
    ),
    "goal_of_another_north_star": (
        [("north_star: engagement\n    metric: deposit_rate", "north_star: growth\n    metric: deposit_rate")],
        ["45: goals[0].north_star: must be the North Star's id 'engagement'"],
    ),
    "unknown_north_star_metric": (
        [("metric: weekly_active_share", "metric: weekly_share")],
        [f"17: north_star.metric: unknown metric 'weekly_share'; defined: {METRIC_IDS}"],
    ),
    "duplicate_touchpoint_id": (
        [("{id: home_modal,", "{id: weekly_email,")],
        [
            "68: touchpoints[1].id: duplicate id 'weekly_email'",
            "81: campaigns[0].touchpoints: unknown touchpoint 'home_modal'; defined: weekly_email, weekly_email, "
            "in_app_widget",
            "88: campaigns[1].touchpoints: unknown touchpoint 'home_modal'; defined: weekly_email, weekly_email, "
            "in_app_widget",
        ],
    ),
    "string_for_integer": (
        [("priority: 10", "priority: '10'")],
        ["82: campaigns[0].priority: must be an integer, got '10'"],
    ),
    "list_for_mapping": (
        [("columns: {}", "columns: []")],
        ["161: sources.events.columns: must be a mapping, got []"],
    ),
    "string_for_list": (
        [("pii: [email, phone, full_name]", "pii: email")],
        ["148: actionable.pii: must be a list, got 'email'"],
    ),
    "item_not_a_mapping": (
        [("goals:\n  - id: grow_deposits", "goals:\n  - oops\n  - id: grow_deposits")],
        ["44: goals[0]: must be a mapping, got 'oops'"],
    ),
    "missing_required_string": (
        [("{id: weekly_email, channel: email, freshness_hours: 168}", "{id: weekly_email, freshness_hours: 168}")],
        ["67: touchpoints[0].channel: is required (a string)"],
    ),
    "missing_required_list": (
        [("  currencies: [EUR, USD, GBP]\n", "")],
        ["147: actionable.currencies: is required (a list)"],
    ),
    "unknown_segment_kind": (
        [("kind: value", "kind: valuable")],
        ["122: segments.definitions[0].kind: must be one of behavioral, demographic, intent, value, got 'valuable'"],
    ),
    "unknown_source_format": (
        [("format: jsonl", "format: xml")],
        ["160: sources.events.format: must be one of jsonl, csv, parquet"],
    ),
    "source_path_empty": (  # a path without {ds} is valid: each file's day is the date in its name
        [('"landing/events/{ds}/*.jsonl"', '""')],
        ["159: sources.events.path: is required (a glob under the data root, e.g. landing/events/{ds}/*.jsonl)"],
    ),
    "holdout_out_of_range": (
        [("holdout: 0.20", "holdout: 1.5")],
        ["83: campaigns[0].holdout: must be a share between 0 and 1 (exclusive), got 1.5"],
    ),
    "frequency_cap_zero": (
        [("{per_days: 7, max: 2}", "{per_days: 0, max: 2}")],
        ["84: campaigns[0].frequency_cap: per_days and max must be at least 1"],
    ),
    "metric_window_zero": (
        [("window_days: 7\n", "window_days: 0\n")],
        ["24: metrics.weekly_active_share.window_days: must be at least 1"],
    ),
    "windows_not_positive": (
        [("windows: [7, 30, 90]", "windows: [7, -1]")],
        ["106: segments.windows: must be a list of positive day counts, got [7, -1]"],
    ),
    "churn_share_zero": (
        [("max_churn_share: 0.5", "max_churn_share: 0")],
        ["105: segments.max_churn_share: must be a share above 0, got 0.0"],
    ),
    "run_at_not_a_time": (
        [('run_at: "03:00"', 'run_at: "25:00"')],
        ["12: schedule.run_at: must be a UTC time HH:MM, got '25:00'"],
    ),
    "start_date_not_a_date": (
        [('start_date: "2026-10-01"', 'start_date: "2026-13-01"')],
        ["11: schedule.start_date: must be a date YYYY-MM-DD, got '2026-13-01'"],
    ),
    "unknown_scoring": (
        [("    rfm:\n", "    kmeans: {k: 3}\n    rfm:\n")],
        ["111: segments.scored.kmeans: unknown scoring; allowed: rfm, lifecycle"],
    ),
    "unknown_rfm_group": (
        [("groups: [champions,", "groups: [champs,")],
        [
            "113: segments.scored.rfm.groups: unknown name 'champs'; allowed: champions, loyal, potential_loyalists, "
            "new, promising, need_attention, about_to_sleep, at_risk, cannot_lose_them, hibernating, lost"
        ],
    ),
    "stage_listed_twice": (
        [("lifecycle:\n      new_days", "lifecycle:\n      stages: [new, new]\n      new_days")],
        ["116: segments.scored.lifecycle.stages: lists a name twice"],
    ),
    "rfm_window_not_a_window": (
        [("window_days: 90", "window_days: 60")],
        ["112: segments.scored.rfm.window_days: must be one of segments.windows [7, 30, 90], got 60"],
    ),
    "rfm_window_not_a_default_window": (
        [("  windows: [7, 30, 90]\n", ""), ("window_days: 90", "window_days: 60")],
        ["111: segments.scored.rfm.window_days: must be one of segments.windows [7, 30, 90], got 60"],
    ),
    "lifecycle_out_of_order": (
        [("active_days: 7 ", "active_days: 40 ")],
        ["115: segments.scored.lifecycle: needs 0 < active_days <= at_risk_days <= dormant_days, got 40, 30, 90"],
    ),
    "dormant_beyond_windows": (
        [("dormant_days: 90", "dormant_days: 120")],
        [
            "119: segments.scored.lifecycle.dormant_days: must be at most the largest window (90 days): days since the "
            "last activity are known only within it"
        ],
    ),
    "rule_with_subquery": (
        [('rule: "deposits_30d >= 2"', 'rule: "deposits_30d >= (SELECT 1)"')],
        [
            f"125: segments.definitions[0].rule: segment 'steady_depositors': '(SELECT 1)' is not allowed (Subquery); "
            f"{RULES_MAY}",
            f"125: segments.definitions[0].rule: segment 'steady_depositors': 'SELECT 1' is not allowed (Select); "
            f"{RULES_MAY}",
        ],
    ),
    "rule_with_unknown_column": (
        [('rule: "deposits_30d >= 2"', "rule: \"password = 'x'\"")],
        [f"125: segments.definitions[0].rule: segment 'steady_depositors': unknown column 'password'; {RULES_MAY}"],
    ),
    "condition_with_unknown_column": (
        [('condition: "deposits > 0"', 'condition: "deposits_30d > 0"')],
        [f"29: metrics.deposit_rate.condition: unknown column 'deposits_30d'; conditions may use: {DAILY}"],
    ),
    "context_with_unknown_column": (
        [(CASHBACK_CONTEXT, CASHBACK_CONTEXT + '    contexts: [{id: payday, when: "paid_on_day > 24"}]\n')],
        [
            "87: campaigns[1].contexts[0].when: context 'payday': unknown column 'paid_on_day'; contexts may use "
            "the features and day_of_week, day_of_month"
        ],
    ),
    "duplicate_context_id": (
        [
            (
                CASHBACK_CONTEXT,
                CASHBACK_CONTEXT
                + '    contexts: [{id: a, when: "day_of_week = 1"}, {id: a, when: "day_of_month = 1"}]\n',
            )
        ],
        ["87: campaigns[1].contexts[1].id: duplicate id 'a'"],
    ),
    "two_problems_in_order": (
        [("kind: value", "kind: valuable"), ("format: jsonl", "format: xml")],
        [
            "122: segments.definitions[0].kind: must be one of behavioral, demographic, intent, value, got 'valuable'",
            "160: sources.events.format: must be one of jsonl, csv, parquet",
        ],
    ),
    "two_references_in_order": (
        [
            ("campaign: savings_nudge", "campaign: savings_nudges"),
            ("segments: [card_regulars]", "segments: [card_regular]"),
        ],
        [
            "47: goals[0].campaign: unknown campaign 'savings_nudges'; defined: savings_nudge, card_cashback, budget_tips",  # noqa: E501
            f"80: campaigns[0].segments: unknown segment 'card_regular'; defined: {SEGMENT_IDS}",
        ],
    ),
}

# The hand-written reader also reported follow-on problems computed from the fallback value it put in
# place of a bad one ("holdout ... got 0.0" after "must be a number, got 'lots'", "unknown metric ''"
# after a missing one), and checked references even when a section was invalid. The typed models report
# the problem itself; the references are checked once every section is valid.
FIRST_PROBLEM_ONLY = {
    "string_for_holdout": (
        [("holdout: 0.20", "holdout: lots")],
        ["83: campaigns[0].holdout: must be a number, got 'lots'"],
    ),
    "bool_for_holdout": (
        [("holdout: 0.20", "holdout: true")],
        ["83: campaigns[0].holdout: must be a number, got True"],
    ),
    "list_for_frequency_cap": (
        [("frequency_cap: {per_days: 7, max: 2}", "frequency_cap: [7, 2]")],
        ["84: campaigns[0].frequency_cap: must be a mapping, got [7, 2]"],
    ),
    "missing_north_star_metric": (
        [("  metric: weekly_active_share\n", "")],
        ["14: north_star.metric: is required (a string)"],
    ),
    "kind_and_reference": (
        [("kind: value", "kind: valuable"), ("campaign: savings_nudge", "campaign: savings_nudges")],
        ["122: segments.definitions[0].kind: must be one of behavioral, demographic, intent, value, got 'valuable'"],
    ),
}


def edited_map(tmp_path: Path, edits: list[tuple[str, str]]) -> Path:
    """The sample map with each `old` text replaced (first occurrence) by `new`; line numbers stay readable."""
    text = BASE
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "pyramid.yaml"
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(MapError) as raised:
        load_map(path)
    assert str(raised.value) == "pyramid map is invalid:\n  " + "\n  ".join(raised.value.problems)
    return raised.value.problems


@pytest.mark.parametrize("name", [*BROKEN, *FIRST_PROBLEM_ONLY])
def test_broken_map_problems(tmp_path, name):
    edits, expected = {**BROKEN, **FIRST_PROBLEM_ONLY}[name]
    path = edited_map(tmp_path, edits)
    assert problems_of(path) == [f"{path}:{line}" for line in expected]


@pytest.mark.parametrize("text", ["- a\n- b\n", "", "just text\n"])
def test_a_map_that_is_not_a_mapping(tmp_path, text):
    path = tmp_path / "pyramid.yaml"
    path.write_text(text)
    assert problems_of(path) == [f"{path}:1: the map must be a mapping of sections"]


def test_a_map_that_is_not_yaml(tmp_path):
    path = tmp_path / "pyramid.yaml"
    path.write_text("a: [\n")
    assert problems_of(path) == [
        f"{path}: not valid YAML: while parsing a flow node\nexpected the node content, but found '<stream end>'\n"
        '  in "<unicode string>", line 2, column 1:\n    \n    ^'
    ]


def test_a_map_that_cannot_be_read(tmp_path):
    path = tmp_path / "missing.yaml"
    assert problems_of(path) == [
        f"{path}: no such file; run from the folder holding your pyramid.yaml, or pass --map FILE "
        f"(or set PYRAMID_MAP); the sample program's map is {DEFAULT_MAP_PATH}"
    ]


def test_a_map_that_is_a_folder(tmp_path):
    assert problems_of(tmp_path) == [f"{tmp_path}: cannot be read (Is a directory)"]


TOP_KEYS = ", ".join(
    ["path", "program", "schedule", "north_star", "metrics", "goals", "touchpoints", "campaigns", "segments"]
    + ["actionable", "sources", "consent", "measures", "features"]
)
TOUCHPOINT_KEYS = "id, channel, freshness_hours, format"


@pytest.mark.parametrize(
    "edits, expected",
    [
        ([("program:\n", "extra: 1\nprogram:\n")], f"extra: unknown key; known keys here: {TOP_KEYS}"),
        (
            [("campaigns:\n", "campaings:\n")],
            f"campaings: unknown key; did you mean 'campaigns'? known keys here: {TOP_KEYS}",
        ),
        (
            [("{id: weekly_email, channel: email,", "{id: weekly_email, chanel: email,")],
            f"touchpoints[0].chanel: unknown key; did you mean 'channel'? known keys here: {TOUCHPOINT_KEYS}",
        ),
    ],
    ids=["top_level", "misspelt_section", "misspelt_touchpoint_key"],
)
def test_an_unknown_or_misspelt_key_is_refused_with_the_closest_known_one(tmp_path, edits, expected):
    path = edited_map(tmp_path, edits)
    key = expected.split(":")[0].rsplit(".", 1)[-1]
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if f"{key}:" in text)
    assert f"{path}:{line}: {expected}" in problems_of(path)  # a misspelt required key is also reported missing


def test_the_sample_map():
    m = load_map(DEFAULT_MAP_PATH)
    assert isinstance(m, PyramidMap) and m.path == DEFAULT_MAP_PATH
    assert (m.program_name, str(m.start_date), m.run_at) == ("Acme Savings personalization", "2026-10-01", (3, 0))
    assert repr(m.north_star) == (
        "NorthStar(id='engagement', description='Share of known users active in the app in "
        "the last 7 days.', metric='weekly_active_share')"
    )
    assert list(m.metrics) == [
        "weekly_active_share",
        "deposit_rate",
        "card_spend_rate",
        "budget_tool_rate",
        "unsubscribe_rate",
        "time_to_first_deposit",
        "rec_ctr",
    ]
    assert m.metrics["deposit_rate"] == Metric(
        "deposit_rate", "Made at least one completed deposit that day.", 1, "deposits > 0"
    )
    assert isinstance(m.goals, tuple) and len(m.goals) == 5
    assert repr(m.goals[0]) == (
        "Goal(id='grow_deposits', north_star='engagement', metric='deposit_rate', campaign='savings_nudge', "
        "target_relative_lift=0.15, guardrails=('unsubscribe_rate',))"
    )
    assert m.touchpoints == (
        Touchpoint("weekly_email", "email", 168.0),
        Touchpoint("home_modal", "web", 36.0),
        Touchpoint("in_app_widget", "app", 30.0),
        Touchpoint("welcome_inbox", "app", 36.0),
        Touchpoint("recommendations", "app", 30.0),
    )
    assert all(isinstance(t.freshness_hours, float) for t in m.touchpoints)
    assert isinstance(m.campaigns, tuple) and [c.id for c in m.campaigns] == [
        "savings_nudge",
        "card_cashback",
        "budget_tips",
        "welcome_series",
        "personalized_recs",
    ]
    assert m.campaign("card_cashback") == Campaign(
        "card_cashback",
        "Regular savers see a cashback offer that invites them to pay with their card.",
        ("steady_depositors",),
        ("in_app_widget", "home_modal"),
        20,
        0.2,
        FrequencyCap(3, 1),
    )
    assert m.touchpoint("home_modal").freshness_hours == 36.0
    assert_segments(m)
    assert repr(m.actionable) == (
        "Actionable(pii=('email', 'phone', 'full_name'), consent_column='consent_personalization', "
        "dedup_lookback_days=7, max_clock_skew_minutes=5, currencies=('EUR', 'USD', 'GBP'))"
    )
    assert list(m.sources) == ["events", "profiles", "transactions", "erasure_requests"]
    assert repr(m.sources["events"]) == (
        "Source(name='events', path='landing/events/{ds}/*.jsonl', format='jsonl', columns={})"
    )
    assert m.sources["profiles"].format == "csv"


def assert_segments(m: PyramidMap) -> None:
    s = m.segments
    assert (s.min_size, s.windows, s.max_churn_share) == (1000, (7, 30, 90), 0.5)
    assert len(s.definitions) == 21 and len(s.rule_definitions) == 5 and isinstance(s.definitions, tuple)
    assert repr(s.definitions[0]) == (
        "SegmentDefinition(id='steady_depositors', kind='value', description='Deposited at least twice in the last 30 "
        "days.', owner='savings-team', rule='deposits_30d >= 2', min_size=1000, method='rule', group='', "
        "scoring=None, inputs=())"
    )
    rfm = (
        "RfmScoring(window_days=90, groups=('champions', 'loyal', 'potential_loyalists', 'new', 'promising', "
        "'need_attention', 'about_to_sleep', 'at_risk', 'cannot_lose_them', 'hibernating', 'lost'), min_size=1000, "
        "stability=Stability(refresh='daily', min_stay_days=7, leave_margin=1), "
        "recency='last_txn_at', frequency='txns', monetary=('balance_in', 'balance_out'))"
    )
    lifecycle = (
        "LifecycleScoring(new_days=30, active_days=7, at_risk_days=30, dormant_days=90, stages=('new', "
        "'active', 'at_risk', 'dormant', 'churned'), min_size=1000, "
        "stability=Stability(refresh='daily', min_stay_days=1, leave_margin=0))"
    )
    assert (repr(s.rfm), repr(s.lifecycle)) == (rfm, lifecycle)
    assert repr(s.definitions[5]) == (
        "SegmentDefinition(id='rfm_champions', kind='value', description='RFM group champions (recency, frequency, "
        f"monetary over 90 days).', owner='', rule='', min_size=1000, method='rfm', group='champions', scoring={rfm}, "
        "inputs=('consent_personalization', 'last_txn_at', 'txns_90d', 'balance_in_90d', 'balance_out_90d'))"
    )
    assert repr(s.definitions[-1]) == (
        "SegmentDefinition(id='lifecycle_churned', kind='behavioral', description='Lifecycle stage churned.', "
        f"owner='', rule='', min_size=1000, method='lifecycle', group='churned', scoring={lifecycle}, "
        "inputs=('consent_personalization', 'tenure_days', 'days_since_last_seen', 'last_txn_at'))"
    )


def test_defaults(tmp_path):
    raw = yaml.safe_load(BASE)
    del raw["program"], raw["schedule"]["run_at"], raw["north_star"]["description"], raw["goals"][0]["guardrails"]
    del raw["metrics"]["deposit_rate"]["window_days"], raw["metrics"]["deposit_rate"]["description"]
    for key in ("context", "priority", "frequency_cap"):
        del raw["campaigns"][0][key]
    for key in ("min_size", "max_churn_share", "windows"):
        del raw["segments"][key]
    raw["segments"]["scored"] = {"rfm": {}, "lifecycle": {}}
    for key in ("description", "owner"):
        del raw["segments"]["definitions"][0][key]
    raw["segments"]["definitions"][1]["min_size"] = 5
    for key in ("pii", "consent_column", "dedup_lookback_days", "max_clock_skew_minutes"):
        del raw["actionable"][key]
    raw["sources"]["events"] = {"path": "e/{ds}/*.csv"}
    path = tmp_path / "pyramid.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    m = load_map(path)
    assert (m.program_name, m.run_at, m.north_star.description) == ("personalization program", (3, 0), "")
    assert m.goals[0].guardrails == () and m.metrics["deposit_rate"] == Metric("deposit_rate", "", 1, "deposits > 0")
    assert m.campaigns[0] == Campaign(
        "savings_nudge", "", ("card_regulars",), ("weekly_email", "home_modal"), 0, 0.2, FrequencyCap(1, 1)
    )
    s = m.segments
    assert (s.min_size, s.windows, s.max_churn_share) == (10000, (7, 30, 90), 0.5)
    assert (s.definitions[0].description, s.definitions[0].owner, s.definitions[0].min_size) == ("", "", 10000)
    assert s.definitions[1].min_size == 5
    assert repr(s.rfm) == (
        "RfmScoring(window_days=90, groups=('champions', 'loyal', 'potential_loyalists', 'new', "
        "'promising', 'need_attention', 'about_to_sleep', 'at_risk', 'cannot_lose_them', "
        "'hibernating', 'lost'), min_size=10000, "
        "stability=Stability(refresh='daily', min_stay_days=1, leave_margin=0), "
        "recency='last_txn_at', frequency='txns', monetary=('balance_in', 'balance_out'))"
    )
    assert repr(s.lifecycle) == (
        "LifecycleScoring(new_days=30, active_days=7, at_risk_days=30, dormant_days=90, "
        "stages=('new', 'active', 'at_risk', 'dormant', 'churned'), min_size=10000, "
        "stability=Stability(refresh='daily', min_stay_days=1, leave_margin=0))"
    )
    assert len(s.definitions) == 5 + 11 + 5
    assert repr(m.actionable) == (
        "Actionable(pii=(), consent_column='consent_personalization', dedup_lookback_days=7, "
        "max_clock_skew_minutes=5, currencies=('EUR', 'USD', 'GBP'))"
    )
    assert repr(m.sources["events"]) == "Source(name='events', path='e/{ds}/*.csv', format='csv', columns={})"


def test_pyramid_check(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    for name in ("PYRAMID_DATA_ROOT", "PYRAMID_MAP"):  # set, then removed: the CLI sets them, and they are restored
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    path = tmp_path / "pyramid.yaml"
    path.write_text(BASE)
    assert main(["--map", str(path), "check"]) == 0
    assert " ".join(capsys.readouterr().out.split()) == (
        f"{path} is valid: North Star engagement (weekly_active_share), 3 goals, 3 touchpoints, 3 campaigns, "
        "21 segments, partitions from 2026-10-01"
    )
    broken = edited_map(tmp_path, BROKEN["unknown_campaign_in_goal"][0])
    assert main(["--map", str(broken), "check"]) == 2
    assert " ".join(capsys.readouterr().err.split()) == (
        f"error: the map is invalid cause: {broken}:47: goals[0].campaign: unknown campaign 'savings_nudges'; "
        "defined: savings_nudge, card_cashback, budget_tips to do: correct it; `pyramid check` checks it again"
    )


def test_guardrail_margins(tmp_path):
    edit = ("guardrails: [unsubscribe_rate]", "guardrails: [{metric: unsubscribe_rate, max_relative_rise: 0.05}]")
    m = load_map(edited_map(tmp_path, [edit]))
    assert m.goals[0].guardrails == ("unsubscribe_rate",) and m.goals[1].guardrails == ("unsubscribe_rate",)
    assert m.goals[0].guardrail_margin("unsubscribe_rate") == 0.05
    assert m.goals[1].guardrail_margin("unsubscribe_rate") == 0.10  # a bare metric id: the default margin


def test_broken_guardrail_margins(tmp_path):
    edit = ("guardrails: [unsubscribe_rate]", "guardrails: [{max_relative_rise: -1}]")
    path = edited_map(tmp_path, [edit])
    assert problems_of(path) == [
        f"{path}:49: goals[0].guardrails[0].metric: is required (a metric id)",
        f"{path}:49: goals[0].guardrails[0].max_relative_rise: must be a number >= 0, got -1",
    ]
