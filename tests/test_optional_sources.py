"""Maps that leave sources out: without profiles (users first seen in their activity, consent from the map's
default) and without events; both run end to end on a small generated landing, and the map refuses a
missing consent default (docs/contracts.md, "Sources of any shape")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets.lake import Lake
from assets.pyramid_map import DEFAULT_MAP_PATH, NOT_DECLARED, MapError, PyramidMap, load_map
from assets.snapshots import read_day
from pipelines.definitions import NIGHTLY_JOB, build_definitions
from pipelines.resources import PyramidResource
from pipelines.runner import QUIET
from pipelines.sample.generate import generate_sample
from tests.independent import _csv_rows, _jsonl_rows, _not_future, erased_by_day, parse_time
from tests.pyramid_run import _lake_rows

USERS, DAYS, SEED = 400, 3, 11
BASE = DEFAULT_MAP_PATH.read_text()
PROFILES_BLOCK = BASE[BASE.index("  profiles:\n    path:") : BASE.index("  transactions:\n    path:")]
EVENTS_BLOCK = BASE[BASE.index("  events:\n    path:") : BASE.index("  profiles:\n    path:")]
ERASURE_BLOCK = BASE[
    BASE.index("  erasure_requests:\n    path:") : BASE.index(
        "\n", BASE.index("required: false", BASE.index("  erasure_requests:\n    path:"))
    )
    + 1
]
CURRENCIES = next(f"{line}\n" for line in BASE.splitlines() if line.startswith("  currencies: "))


def consent_default(personalization: str, marketing: str = "denied") -> str:
    return (
        f"{CURRENCIES}  consent_default: {{personalization: {personalization}, marketing: {marketing}, "
        'basis: "the customer contract, clause 4"}\n'
    )


def map_text(*, without: tuple[str, ...], consent: str | None) -> str:
    text = BASE
    if "profiles" in without:
        text = text.replace(PROFILES_BLOCK, "")
    if "events" in without:
        text = text.replace(EVENTS_BLOCK, "")
    if "erasure_requests" in without:
        text = text.replace(ERASURE_BLOCK, "")
    return text.replace(CURRENCIES, consent, 1) if consent else text


@dataclass
class Run:
    lake: Lake
    pyramid_map: PyramidMap
    days: list[date]
    results: dict[date, dg.ExecuteInProcessResult]


def run_program(root: Path, text: str) -> Run:
    path = root / "pyramid.yaml"
    path.write_text(text)
    pyramid_map = load_map(path)
    job = build_definitions(pyramid_map, PyramidResource(data_root=str(root))).resolve_job_def(NIGHTLY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    days = [pyramid_map.start_date + timedelta(days=n) for n in range(DAYS)]
    results = {
        day: job.execute_in_process(partition_key=day.isoformat(), instance=instance, run_config=QUIET) for day in days
    }
    return Run(Lake(root), pyramid_map, days, results)


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("landing")
    generate_sample(root / "landing", users=USERS, days=DAYS, seed=SEED, pyramid_map=load_map())
    return root


def program(tmp_path_factory, landing: Path, text: str) -> Run:
    root = tmp_path_factory.mktemp("program")
    (root / "landing").symlink_to(landing / "landing", target_is_directory=True)
    return run_program(root, text)


@pytest.fixture(scope="module")
def no_profiles(tmp_path_factory, landing) -> Run:
    return program(tmp_path_factory, landing, map_text(without=("profiles",), consent=consent_default("granted")))


@pytest.fixture(scope="module")
def no_events(tmp_path_factory, landing) -> Run:
    text = map_text(without=("profiles", "events", "erasure_requests"), consent=consent_default("denied", "granted"))
    return program(tmp_path_factory, landing, text)


def first_seen(landing: Path, sources: tuple[str, ...]) -> dict[str, datetime]:
    """A plain recomputation: each user's earliest qualifying activity on the first landing day they have one."""
    signup: dict[str, datetime] = {}
    for offset in range(DAYS):
        ds = load_map().start_date + timedelta(days=offset)
        rows = _jsonl_rows(landing, ds) if "events" in sources else []
        rows += [r for r in _csv_rows(landing, "transactions", ds) if (r.get("status") or "").strip() == "completed"]
        day: dict[str, datetime] = {}
        for row in rows:
            user, at = (row.get("user_id") or "").strip(), parse_time((row.get("occurred_at") or "").strip())
            if user and _not_future(at, ds):
                day[user] = min(day.get(user, at), at)
        signup |= {user: at for user, at in day.items() if user not in signup}
    return signup


def snapshot_signups(run: Run, day: date) -> dict[str, datetime]:
    rows = read_day(run.lake, "actionable", "profiles", day).to_pylist()
    return {r["user_id"]: r["signup_at"] for r in rows}


def test_without_profiles_every_day_succeeds_and_the_left_out_source_is_empty(no_profiles):
    for day, result in no_profiles.results.items():
        assert result.success, day
        assert all(e.passed for e in result.get_asset_check_evaluations() if e.check_name == "rows_accounted_for")
        raw = [m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("raw_profiles")]
        assert raw[0].materialization.metadata["source"].value.startswith("not declared in the map")
        assert pq.read_table(no_profiles.lake.partition_file("raw", "profiles", day)).num_rows == 0


def test_users_are_known_from_their_first_activity(no_profiles, landing):
    last = no_profiles.days[-1]
    erased = erased_by_day(landing / "landing")[last]
    expected = {
        u: at for u, at in first_seen(landing / "landing", ("events", "transactions")).items() if u not in erased
    }
    assert snapshot_signups(no_profiles, last) == expected
    assert erased & set(first_seen(landing / "landing", ("events", "transactions")))  # erasure removed some
    features = _lake_rows(no_profiles.lake, "actionable", "user_features", f"WHERE ds = DATE '{last}'")
    assert {r["user_id"] for r in features} == set(expected)
    assert {r["age_band"] for r in features} == {"unknown"} and {r["country"] for r in features} == {None}
    assert {r["consent_personalization"] for r in features} == {True}
    # kept across days: a user seen on the first day keeps that day's signup
    first = snapshot_signups(no_profiles, no_profiles.days[0])
    assert all(expected[u] == at for u, at in first.items() if u in expected)


def test_granted_consent_puts_users_in_segments_and_is_recorded(no_profiles):
    last = no_profiles.days[-1]
    members = _lake_rows(no_profiles.lake, "segments", "segment_membership", f"WHERE ds = DATE '{last}'")
    assert members
    users = pq.read_table(no_profiles.lake.partition_file("actionable", "profiles", last)).num_rows
    record = json.loads((no_profiles.lake.reports / "privacy_decisions" / f"{last}.json").read_text())
    assert record["consent_default/personalization"] == "granted"
    assert record["consent_default/marketing"] == "denied"
    assert record["consent_default/basis"] == "the customer contract, clause 4"
    assert record["consent_default/users"] >= users  # erasure may remove users after the record
    marketing = _lake_rows(no_profiles.lake, "actionable", "marketing_consent", f"WHERE ds = DATE '{last}'")
    assert marketing and {r["consent_marketing"] for r in marketing} == {False}


def test_without_events_and_erasures_users_come_from_transactions_and_denied_consent_targets_nobody(no_events, landing):
    last = no_events.days[-1]
    assert all(result.success for result in no_events.results.values())
    expected = first_seen(landing / "landing", ("transactions",))  # nobody erased: no erasure requests declared
    assert snapshot_signups(no_events, last) == expected
    assert pq.read_table(no_events.lake.partition_file("actionable", "erased_users", last)).num_rows == 0
    assert not _lake_rows(no_events.lake, "segments", "segment_membership", f"WHERE ds = DATE '{last}'")
    assert not _lake_rows(no_events.lake, "campaigns", "audiences", f"WHERE ds = DATE '{last}'")
    assert pq.read_table(no_events.lake.partition_file("actionable", "events", last)).num_rows == 0


def test_status_shows_the_left_out_sources_and_the_privacy_decision(no_events, tmp_path):
    from pipelines import status

    data = status.collect(no_events.lake, no_events.pyramid_map, tmp_path / "home", no_events.lake.root)
    day = data["days"][-1]
    assert day["state"] == "ok" and set(day["landing"]) == {"transactions"}
    assert data["not_declared"] == ["events", "profiles", "erasure_requests"]
    text = status.render(data, 160)
    assert f"{NOT_DECLARED}: events, profiles, erasure_requests" in text
    assert "privacy decision: consent from the map's default (personalization denied, marketing granted)" in text


def test_a_map_without_profiles_needs_a_consent_default(tmp_path, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    path = tmp_path / "pyramid.yaml"
    path.write_text(map_text(without=("profiles",), consent=None))
    assert main(["--map", str(path), "check"]) == 2
    line = path.read_text().splitlines().index("actionable:") + 1
    assert " ".join(capsys.readouterr().err.split()) == (
        f"error: the map is invalid cause: {path}:{line}: actionable.consent_default: is required when "
        "sources.profiles is left out: declare {personalization: granted|denied, marketing: granted|denied, "
        "basis: why}; consent is never assumed to do: correct it; `pyramid check` checks it again"
    )


def test_check_and_summary_name_the_left_out_sources(no_profiles, monkeypatch, capsys):
    from pipelines.cli import main

    monkeypatch.setenv("DAGSTER_HOME", str(no_profiles.lake.root / "dagster_home"))
    args = ["--map", str(no_profiles.pyramid_map.path), "--data-root", str(no_profiles.lake.root)]
    assert main([*args, "check"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"data: profiles: {NOT_DECLARED} (not declared in the map; its tables stay empty)" in err
    assert "profiles: no landing file" not in err
    assert main([*args, "summary"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{NOT_DECLARED}: profiles" in out
    assert "privacy decision: consent from the map's default (personalization granted, marketing denied); " in out
    users = json.loads((no_profiles.lake.reports / "privacy_decisions" / f"{no_profiles.days[-1]}.json").read_text())
    assert f"applied to {users['consent_default/users']:,} users on {no_profiles.days[-1]}" in out


def line_of(text: str, start: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(start))


def test_a_consent_default_beside_profiles_is_refused(tmp_path):
    path = tmp_path / "pyramid.yaml"
    path.write_text(map_text(without=(), consent=consent_default("granted")))
    with pytest.raises(MapError) as raised:
        load_map(path)
    assert raised.value.problems == [
        f"{path}:{line_of(path.read_text(), '  consent_default:')}: actionable.consent_default: applies only when "
        "sources.profiles is left out: the profiles carry each user's consent"
    ]


def test_a_map_needs_events_or_transactions(tmp_path):
    path = tmp_path / "pyramid.yaml"
    text = map_text(without=("events", "profiles"), consent=consent_default("granted"))
    path.write_text(text.replace(BASE[BASE.index("  transactions:\n    path:") :].split("  erasure_requests:")[0], ""))
    with pytest.raises(MapError) as raised:
        load_map(path)
    line = line_of(path.read_text(), "sources:")
    assert raised.value.problems == [
        f"{path}:{line}: sources.{name}: is required (a mapping) unless the other is declared"
        for name in ("events", "transactions")
    ]


def test_the_day_line_counts_the_activity_source_the_map_declares():
    from assets.pyramid_map import NOT_DECLARED_NOTE
    from pipelines.runner import _activity_counts

    left_out = {"raw_rows": 0, "actionable_rows": 0, "source": NOT_DECLARED_NOTE}
    purchases = {"raw_rows": 120, "actionable_rows": 118, "quarantined_rows": 2, "duplicates_removed": 0}
    line = _activity_counts({"actionable_events": left_out, "actionable_transactions": purchases})
    assert line == ["transactions 120 → 118", "(quarantined 2, duplicates 0)"]
    assert _activity_counts({"actionable_events": purchases})[0] == "events 120 → 118"


def test_the_summary_claims_nothing_about_erasure_requests_a_map_leaves_out(no_events):
    from rich.console import Console

    from pipelines.summary import print_summary

    console = Console(record=True, width=160)
    print_summary(no_events.lake, no_events.pyramid_map, console)
    text = " ".join(console.export_text().split())
    assert f"{NOT_DECLARED}: events, profiles, erasure_requests" in text
    assert "erasure requests:" not in text  # not "every request was honoured": none could be made
