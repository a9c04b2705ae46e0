"""pipelines.sample: landing files per the contract, deterministic, with exactly the planted
defects and a visible planted effect. Files are read back with plain json/csv and arms recomputed with
hashlib, so nothing here trusts the generator's own code."""

import csv
import fnmatch
import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from assets.pyramid_map import load_map
from pipelines.sample.effects import PLANTED_EFFECTS, content_campaigns
from pipelines.sample.generate import generate_sample
from tests.independent import CURRENCIES, EVENT_TYPES

ROOT = Path(__file__).resolve().parent.parent
START = date(2026, 10, 1)
SMALL = {"users": 2000, "days": 8, "seed": 11}
SKEW = timedelta(minutes=5)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    landing = tmp_path_factory.mktemp("small") / "landing"
    return generate_sample(landing, **SMALL)


@pytest.fixture(scope="module")
def files(small):
    return read_landing(small.landing, SMALL["days"])


# --- reading the files back, independently of the generator --------------------------------------


def landing_days(days):
    return [(START + timedelta(days=d)).isoformat() for d in range(days)]


def read_landing(landing, days):
    out = {"events": {}, "transactions": {}, "profiles": {}, "erasure_requests": {}}
    for ds in landing_days(days):
        with open(landing / "events" / ds / "events-0.jsonl", encoding="utf-8") as f:
            out["events"][ds] = [json.loads(line) for line in f]
        for source in ("transactions", "profiles", "erasure_requests"):
            with open(landing / source / ds / f"{source}-0.csv", newline="", encoding="utf-8") as f:
                out[source][ds] = list(csv.DictReader(f))
    return out


def parse_ts(text):
    try:
        value = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return value if value.tzinfo else None


def is_holdout(campaign_id, user_id, share):
    digest = hashlib.md5(f"{campaign_id}:{user_id}".encode()).hexdigest()
    return int(digest[:13], 16) / 16**13 < share


def contract_columns():
    """source -> (file pattern, columns) from the landing-files table of docs/contracts.md."""
    table = {}
    for line in (ROOT / "docs" / "contracts.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] in ("events", "profiles", "transactions", "erasure_requests"):
            columns = re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cells[2]))
            table[cells[0]] = (re.search(r"`([^`]+)`", cells[1]).group(1), columns)
    return table


def classify_row(row, ds, known_users, seen_ids, id_key, source):
    """Every defect the row shows; `seen_ids` collects the ids delivered so far."""
    row_id = row[id_key] or None
    if row_id is not None and row_id in seen_ids:
        return ["duplicate"]
    if row_id is not None:
        seen_ids.add(row_id)
    found = []
    user = row["user_id"] or None
    if row_id is None:
        found.append("null_id")
    if user is None:
        found.append("null_user_id")
    elif user not in known_users:
        found.append("orphan_user")
    when = parse_ts(row["occurred_at"])
    day = date.fromisoformat(ds)
    day_end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    if when is None:
        found.append("unparseable_timestamp")
    elif when > day_end + SKEW:
        found.append("future_timestamp")
    else:
        if when.utcoffset() != timedelta(0):
            found.append("mixed_offset")
        if when.astimezone(UTC).date() < day:
            found.append("late")
    if source == "events" and row["event_type"] not in EVENT_TYPES:
        found.append("unknown_event_type")
    if source == "transactions":
        amount = float(row["amount"])
        if amount < 0:
            found.append("negative_amount")
        if amount > 1_000_000:
            found.append("absurd_amount")
        if row["currency"] not in CURRENCIES:
            found.append("unknown_currency")
    return found


def count_row_defects(files, source, id_key):
    known = {p["user_id"] for day in files["profiles"].values() for p in day}
    seen, totals, by_day = set(), Counter(), defaultdict(Counter)
    for ds, rows in files[source].items():
        for row in rows:
            found = classify_row(row, ds, known, seen, id_key, source)
            assert len(found) <= 1, f"{source} row with several defects {found}: {row}"
            for name in found:
                totals[name] += 1
                by_day[name][ds] += 1
    return totals, by_day


def count_profile_defects(files):
    totals, by_day = Counter(), defaultdict(Counter)
    for ds, rows in files["profiles"].items():
        groups = defaultdict(list)
        for row in rows:
            groups[(row["user_id"], row["updated_at"])].append(row["plan"])
            if not row["birth_year"].isdigit():
                totals["bad_birth_year"] += 1
                by_day["bad_birth_year"][ds] += 1
        for plans in groups.values():
            if len(plans) > 1:
                assert len(set(plans)) == len(plans), "a contradictory twin must change the plan"
                totals["contradictory_update"] += len(plans) - 1
                by_day["contradictory_update"][ds] += len(plans) - 1
    return totals, by_day


# --- layout and contract -------------------------------------------------------------------------


def test_files_follow_the_landing_contract_exactly(small, files):
    contract = contract_columns()
    assert set(contract) == {"events", "profiles", "transactions", "erasure_requests"}
    for source, (pattern, columns) in contract.items():
        folders = sorted(p.name for p in (small.landing / source).iterdir())
        assert folders == landing_days(SMALL["days"])
        for ds in folders:
            names = [p.name for p in (small.landing / source / ds).iterdir()]
            assert len(names) == 1 and fnmatch.fnmatch(names[0], pattern), names
            if source == "events":
                keys = {tuple(event) for event in files["events"][ds]}
                assert keys == {tuple(columns)}
                assert all(isinstance(e["properties"], dict) for e in files["events"][ds])
            else:
                with open(small.landing / source / ds / names[0], newline="") as f:
                    assert next(csv.reader(f)) == columns
    assert sorted(p.name for p in (small.landing / "_truth").iterdir()) == ["defect_plan.json", "planted_truth.json"]


def test_values_are_well_formed(files):
    events = [e for day in files["events"].values() for e in day]
    features = Counter(e["properties"].get("feature") for e in events if e["event_type"] == "feature_use")
    assert set(features) == {"budget_tool", "savings_goal", "card_controls"}
    assert all(set(e["properties"]) <= {"device", "page", "screen", "query", "feature"} for e in events)
    campaign_events = [e for e in events if e["event_type"] in {"impression", "click", "conversion", "unsubscribe"}]
    assert campaign_events and all(e["touchpoint_id"] for e in campaign_events)
    # a content campaign's holdout sees the default content at its touchpoint: no campaign id
    content = set(content_campaigns(load_map()).values())
    assert all(e["campaign_id"] or e["touchpoint_id"] in content for e in campaign_events)
    assert all(e["campaign_id"] is None for e in events if e["event_type"] in {"session_start", "page_view", "search"})
    txns = [t for day in files["transactions"].values() for t in day]
    assert {t["txn_type"] for t in txns} == {"deposit", "card_payment", "transfer_in", "transfer_out"}
    status = Counter(t["status"] for t in txns)
    assert 0.92 < status["completed"] / len(txns) < 0.98 and status["pending"] and status["failed"]
    assert all(t["merchant_category"] for t in txns if t["txn_type"] == "card_payment")
    assert all(re.fullmatch(r"-?\d+\.\d{2}", t["amount"]) for t in txns)
    profiles = [p for day in files["profiles"].values() for p in day]
    assert {p["consent_personalization"] for p in profiles} == {"true", "false"}
    assert {p["plan"] for p in profiles} == {"basic", "plus", "premium"}
    assert {p["country"] for p in profiles} <= {"DE", "FR", "NL", "ES", "GB", "IE"}
    assert all(
        re.fullmatch(r"u\d{7}", p["user_id"]) and "@" in p["email"] and p["phone"].startswith("+") for p in profiles
    )
    consent = sum(p["consent_personalization"] == "true" for p in files["profiles"][landing_days(1)[0]])
    assert 0.80 < consent / len(files["profiles"][landing_days(1)[0]]) < 0.90


def test_volume_per_user_day_gives_50k_to_100k_events_a_day_at_20k_users(small):
    per_user_day = small.rows["events"] / (SMALL["users"] * SMALL["days"])
    assert 2.5 < per_user_day < 5.0
    assert small.rows["events"] == sum(small.rows_by_day["events"].values())
    assert small.generate_seconds > 0 and small.write_seconds >= small.render_seconds > 0


def test_users_act_only_after_signup_and_before_their_erasure(files):
    first = {}
    for ds, rows in files["profiles"].items():
        for p in rows:
            first.setdefault(p["user_id"], (ds, parse_ts(p["signup_at"])))
    new = {u for u, (ds, signup) in first.items() if signup >= datetime(2026, 10, 1, tzinfo=UTC)}
    assert 0.05 < len(new) / len(first) < 0.15
    assert all(signup.date().isoformat() == ds for u, (ds, signup) in first.items() if u in new)
    assert all(ds == landing_days(1)[0] for u, (ds, _) in first.items() if u not in new)
    erased = {r["user_id"]: ds for ds, rows in files["erasure_requests"].items() for r in rows}
    assert erased and min(erased.values()) >= landing_days(SMALL["days"])[SMALL["days"] // 2]
    for source in ("events", "transactions"):
        for ds, rows in files[source].items():
            for row in rows:
                when, user = parse_ts(row["occurred_at"]), row["user_id"]
                if when is not None and user in first:
                    assert when >= first[user][1], (source, row)
                if user in erased:
                    assert ds < erased[user], (source, row)


# --- determinism and regeneration ----------------------------------------------------------------


def snapshot(landing):
    return {p.relative_to(landing): p.read_bytes() for p in sorted(landing.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    args = {"users": 400, "days": 4}
    first = snapshot(generate_sample(tmp_path / "a", seed=3, **args).landing)
    again = snapshot(generate_sample(tmp_path / "b", seed=3, **args).landing)
    other = snapshot(generate_sample(tmp_path / "c", seed=4, **args).landing)
    assert first == again
    assert first.keys() == other.keys()
    assert all(first[p] != other[p] for p in first if p.parts[0] in ("events", "transactions"))


def test_regenerating_replaces_the_previous_sample_only(tmp_path):
    landing = tmp_path / "landing"
    generate_sample(landing, users=200, days=5, seed=1)
    (landing / "events" / "2026-09-30").mkdir()
    (landing / "events" / "2026-09-30" / "events-0.jsonl").write_text("{}\n")
    (landing / "other_feed").mkdir()
    (landing / "other_feed" / "keep.csv").write_text("x\n")
    summary = generate_sample(landing, users=200, days=2, seed=1)
    assert sorted(p.name for p in (landing / "events").iterdir()) == landing_days(2)
    assert (landing / "other_feed" / "keep.csv").exists()
    assert set(summary.files) == {p for p in landing.rglob("*-0.*") if p.parent.parent.name != "other_feed"}


# --- planted defects -----------------------------------------------------------------------------


def test_defect_plan_counts_match_the_files(small, files):
    plan = json.loads(small.defect_plan_path.read_text())
    assert (plan["seed"], plan["users"], plan["days"]) == (SMALL["seed"], SMALL["users"], SMALL["days"])
    for source, id_key in (("events", "event_id"), ("transactions", "txn_id")):
        totals, by_day = count_row_defects(files, source, id_key)
        planned = plan["defects"][source]
        assert {name: planned[name]["count"] for name in planned} == {name: totals[name] for name in planned}
        assert set(totals) <= set(planned), set(totals) - set(planned)
        for name, entry in planned.items():
            assert entry["count"] > 0, f"{source}: no {name} planted"
            assert entry["by_landing_day"] == dict(by_day[name])
    totals, by_day = count_profile_defects(files)
    planned = plan["defects"]["profiles"]
    assert {name: planned[name]["count"] for name in planned} == {name: totals[name] for name in planned}
    assert {name: planned[name]["by_landing_day"] for name in planned} == {name: dict(by_day[name]) for name in planned}


def test_defects_are_rare_and_rates_are_respected(small, files):
    plan = json.loads(small.defect_plan_path.read_text())["defects"]
    events = sum(len(rows) for rows in files["events"].values())
    for name, entry in plan["events"].items():
        assert entry["count"] <= entry["rate"] * events * 1.05 + 1, name
        assert entry["rate"] <= 0.01
    assert plan["events"]["null_id"]["quarantine_reason"] == "missing_key"
    assert plan["transactions"]["negative_amount"]["quarantine_reason"] == "non_positive_amount"
    assert plan["events"]["late"]["quarantine_reason"] is None


# --- arms and the planted effect -----------------------------------------------------------------


def test_holdout_users_never_get_campaign_messages(small, files):
    campaigns = {c.id: c for c in load_map().campaigns}
    truth = json.loads(small.truth_path.read_text())["campaigns"]
    users = {p["user_id"] for rows in files["profiles"].values() for p in rows}
    for cid, campaign in campaigns.items():
        held = sum(is_holdout(cid, u, campaign.holdout) for u in users)
        assert (truth[cid]["holdout_users"], truth[cid]["treatment_users"]) == (held, len(users) - held)
    shown, unsubscribed = Counter(), Counter()
    for rows in files["events"].values():
        for e in rows:
            if e["event_type"] in {"impression", "click", "conversion"} and e["user_id"] in users and e["campaign_id"]:
                campaign = campaigns[e["campaign_id"]]
                assert not is_holdout(campaign.id, e["user_id"], campaign.holdout), e
                assert e["touchpoint_id"] in campaign.touchpoints
                shown[campaign.id] += 1
            if e["event_type"] == "unsubscribe" and e["user_id"] in users:
                campaign = campaigns[e["campaign_id"]]
                unsubscribed[is_holdout(campaign.id, e["user_id"], campaign.holdout)] += 1
    assert set(shown) == set(campaigns)
    assert unsubscribed[True] > 0 and unsubscribed[False] > 0


def day_rates(landing, days, campaign_id, holdout, behaviour):
    """Share of user-days with the behaviour, by arm, over the users present all window long."""
    profiles, erased = {}, set()
    for ds in landing_days(days):
        with open(landing / "profiles" / ds / "profiles-0.csv", newline="") as f:
            for p in csv.DictReader(f):
                profiles.setdefault(p["user_id"], p["signup_at"])
        with open(landing / "erasure_requests" / ds / "erasure_requests-0.csv", newline="") as f:
            erased |= {r["user_id"] for r in csv.DictReader(f)}
    users = {u for u, signup in profiles.items() if signup < "2026-10-01" and u not in erased}
    hits = set()
    for ds in landing_days(days):
        if behaviour == "budget_tool":
            with open(landing / "events" / ds / "events-0.jsonl") as f:
                rows = [json.loads(line) for line in f if '"budget_tool"' in line]
        else:
            with open(landing / "transactions" / ds / "transactions-0.csv", newline="") as f:
                rows = [r for r in csv.DictReader(f) if r["txn_type"] == behaviour and r["status"] == "completed"]
        for r in rows:
            when = parse_ts(r["occurred_at"])
            if when is not None and r["user_id"] in users:
                hits.add((r["user_id"], when.astimezone(UTC).date()))
    window = {START + timedelta(days=d) for d in range(days)}
    per_user = Counter(u for u, d in hits if d in window)
    totals = {True: [0, 0], False: [0, 0]}
    for u in users:
        arm = totals[is_holdout(campaign_id, u, holdout)]
        arm[0] += per_user[u]
        arm[1] += days
    return totals[False][0] / totals[False][1], totals[True][0] / totals[True][1]


@pytest.fixture(scope="module")
def effect_sample(tmp_path_factory):
    return generate_sample(tmp_path_factory.mktemp("effect") / "landing", users=8000, days=20, seed=5)


@pytest.mark.parametrize(
    "campaign_id, behaviour, tolerance",
    [
        ("savings_nudge", "deposit", 0.12),
        ("budget_tips", "budget_tool", 0.15),
    ],
)
def test_planted_effect_shows_in_the_files(effect_sample, campaign_id, behaviour, tolerance):
    campaign = next(c for c in load_map().campaigns if c.id == campaign_id)
    treated, held = day_rates(effect_sample.landing, 20, campaign_id, campaign.holdout, behaviour)
    assert treated / held == pytest.approx(1 + PLANTED_EFFECTS[campaign_id], abs=tolerance)


def test_truth_file_states_what_was_planted(small):
    truth = json.loads(small.truth_path.read_text())
    assert (truth["seed"], truth["users"], truth["days"], truth["start"]) == (11, 2000, 8, "2026-10-01")
    assert "unbiased" in truth["notes"]
    for campaign in load_map().campaigns:
        entry = truth["campaigns"][campaign.id]
        assert entry["relative_effect"] == PLANTED_EFFECTS[campaign.id]
        assert entry["holdout"] == campaign.holdout and entry["touchpoints"] == list(campaign.touchpoints)
    assert truth["campaigns"]["savings_nudge"].items() >= {"goal_id": "grow_deposits", "metric": "deposit_rate"}.items()


def test_effects_can_be_overridden_and_bad_ones_refused(tmp_path):
    summary = generate_sample(tmp_path / "l", users=100, days=1, effects={"savings_nudge": 0.5})
    assert json.loads(summary.truth_path.read_text())["campaigns"]["savings_nudge"]["relative_effect"] == 0.5
    with pytest.raises(ValueError, match="unknown campaigns"):
        generate_sample(tmp_path / "l", users=100, days=1, effects={"nope": 0.1})
    with pytest.raises(ValueError, match="above -1"):
        generate_sample(tmp_path / "l", users=100, days=1, effects={"budget_tips": -1.0})
    pyramid = load_map()
    odd = replace(pyramid, goals=(replace(pyramid.goals[0], metric="unsubscribe_rate"), *pyramid.goals[1:]))
    with pytest.raises(ValueError, match="'unsubscribe_rate'.*cannot plant"):
        generate_sample(tmp_path / "l", users=100, days=1, pyramid_map=odd)
