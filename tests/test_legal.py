"""Legal requests (issue 9, items 2 and 3): an erasure request that cannot be honoured stops the day
naming its file and line; opt-outs and marketing consent keep users out of the exports of a channel."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from assets import contract, erasure_requests, suppression
from assets.lake import Lake, connect
from assets.pyramid_map import Consent, OptOut, Touchpoint, load_map
from assets.touchpoints import Reach, touchpoint_exports
from pipelines.layers.erasure_requests import ERASURE_REQUESTS_CHECK
from tests import independent
from tests.test_actionable import land_text
from tests.test_touchpoints import AS_OF, CAMPAIGNS, TOUCHPOINTS, audiences, exported

UTC = UTC


@pytest.fixture(scope="module")
def pyramid():
    return load_map()


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- item 2: erasure requests that cannot be honoured -----------------------------------------------


def test_a_request_that_cannot_be_honoured_is_quarantined_with_file_and_line(tmp_path, pyramid):
    raw = land_text(
        tmp_path,
        pyramid,
        "erasure_requests",
        "\n".join(
            [
                "user_id,requested_at",
                "u1,2026-10-01T10:00:00Z",
                "u2,2026-10-01T10:00:00Z,extra",  # a field too many: does not parse
                ",2026-10-01T10:00:00Z",  # no user
            ]
        )
        + "\n",
    )
    day = erasure_requests.clean_erasures(connect(), raw)
    assert day.table.column("user_id").to_pylist() == ["u1"]
    problems = erasure_requests.erasure_request_problems(day.quarantine)
    file = raw.column("_source_file")[0].as_py()
    assert problems == [f"{file}:2 (unparseable_row)", f"{file}:3 (missing_user_id)"]
    assert day.accounting()["balanced"]


def _sample_day(tmp_path: Path, pyramid_map, lines: list[str]):
    """One day of a small generated sample plus an erasure request file of ours, run through Dagster."""
    from pipelines.definitions import NIGHTLY_JOB, build_definitions
    from pipelines.resources import PyramidResource
    from pipelines.runner import QUIET
    from pipelines.sample.generate import generate_sample

    generate_sample(tmp_path / "landing", users=300, days=1, seed=3, pyramid_map=pyramid_map)
    ds = pyramid_map.start_date
    requests = tmp_path / "landing" / "erasure_requests" / ds.isoformat() / "requests-9.csv"
    requests.write_text("\n".join(["user_id,requested_at", *lines]) + "\n")
    defs = build_definitions(pyramid_map, PyramidResource(data_root=str(tmp_path)))
    job = defs.resolve_job_def(NIGHTLY_JOB)
    result = job.execute_in_process(
        partition_key=ds.isoformat(), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=QUIET
    )
    return result, Lake(tmp_path), ds


def test_a_malformed_request_stops_the_day_at_the_check_naming_file_and_line(tmp_path, pyramid):
    lines = ["u-valid-0001,2026-10-01T08:00:00Z", "u-broken,2026-10-01T08:00:00Z,extra"]
    result, lake, ds = _sample_day(tmp_path, pyramid, lines)
    assert not result.success
    failed = [
        e for e in result.get_asset_check_evaluations() if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]
    assert [e.check_name for e in failed] == [ERASURE_REQUESTS_CHECK]
    where = f"landing/erasure_requests/{ds}/requests-9.csv:2 (unparseable_row)"
    assert where in failed[0].description
    assert "u-broken" not in failed[0].description  # names the place, not the user
    # the valid request of the same file is recorded; the broken one is quarantined with its reason
    erased = pq.read_table(lake.partition_file("actionable", "erased_users", ds)).column("user_id").to_pylist()
    assert "u-valid-0001" in erased
    quarantine = pq.read_table(lake.partition_file("actionable", "quarantine_erasure_requests", ds)).to_pylist()
    assert [(q["_source_line"], q["reasons"]) for q in quarantine] == [(2, ["unparseable_row"])]
    # nothing downstream of the erased users was written
    for layer, table in [
        ("actionable", "user_features"),
        ("actionable", "channel_suppressions"),
        ("segments", "segment_membership"),
        ("campaigns", "audiences"),
        *(("touchpoints", t.id) for t in pyramid.touchpoints),
        ("goals", "north_star"),
    ]:
        assert not lake.partition_file(layer, table, ds).exists(), (layer, table)
    # the operator sees it: in `pyramid run`'s failure report and in the end-of-run summary
    from pipelines.errors import print_failure, step_failures
    from pipelines.summary import print_summary

    out = io.StringIO()
    console = Console(file=out, width=500)
    print_failure(console, step_failures(result, ds)[0], None, verbose=False)
    print_summary(lake, pyramid, console)
    assert out.getvalue().count(where) == 2


# --- item 3: opt-outs and marketing consent ---------------------------------------------------------

CONSENT = Consent(
    marketing_column="consent_marketing", marketing_channels=("email", "push"), opt_out=OptOut(event_type="unsubscribe")
)


def _events(rows: list[tuple]) -> pa.Table:
    names = ["user_id", "event_type", "channel", "touchpoint_id", "occurred_at"]
    schema = pa.schema([contract.SCHEMAS["events"].field(n) for n in names])
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}).cast(schema)


def test_suppressions_are_cumulative_by_channel_from_the_map(pyramid):
    touchpoints = [Touchpoint("weekly_email", "email", 168), Touchpoint("home_modal", "web", 36)]
    day1 = _events(
        [
            ("u1", "unsubscribe", "email", "weekly_email", utc(2026, 10, 1, 9)),
            ("u1", "unsubscribe", "email", "weekly_email", utc(2026, 10, 1, 8)),  # earliest wins
            ("u2", "unsubscribe", "app", "gone_touchpoint", utc(2026, 10, 1, 9)),  # not in the map: its own channel
            ("u3", "unsubscribe", None, None, utc(2026, 10, 1, 9)),  # no channel at all: everywhere
            ("u4", "click", "email", "weekly_email", utc(2026, 10, 1, 9)),  # not an opt-out
        ]
    )
    first = suppression.update_suppressions(connect(), day1, None, CONSENT, touchpoints)
    assert first.to_pylist() == [
        {"user_id": "u1", "channel": "email", "since": utc(2026, 10, 1, 8)},
        {"user_id": "u2", "channel": "app", "since": utc(2026, 10, 1, 9)},
        {"user_id": "u3", "channel": "*", "since": utc(2026, 10, 1, 9)},
    ]
    day2 = _events(
        [
            ("u1", "unsubscribe", "web", "home_modal", utc(2026, 10, 2, 9)),
            ("u1", "unsubscribe", "email", "weekly_email", utc(2026, 10, 2, 9)),
        ]
    )
    second = suppression.update_suppressions(connect(), day2, first, CONSENT, touchpoints)
    assert [(r["user_id"], r["channel"], r["since"].day) for r in second.to_pylist()] == [
        ("u1", "email", 1),
        ("u1", "web", 2),
        ("u2", "app", 1),
        ("u3", "*", 1),
    ]
    nothing = replace(CONSENT, opt_out=OptOut(event_type=""))
    assert suppression.update_suppressions(connect(), day2, first, nothing, touchpoints).equals(first)


PROFILE_HEADER = (
    "user_id,updated_at,signup_at,country,birth_year,plan,consent_personalization,consent_marketing,"
    "email,phone,full_name"
)


def test_marketing_consent_snapshot(tmp_path, pyramid):
    rows = [
        "u1,2026-10-01T10:00:00Z,2026-09-01T00:00:00Z,DE,1980,basic,true,false,a@example.org,1,A",
        "u2,2026-10-01T10:00:00Z,2026-09-01T00:00:00Z,DE,1980,basic,true,true,b@example.org,1,B",
        "u2,2026-10-01T10:00:00Z,2026-09-01T00:00:00Z,DE,1980,basic,true,false,b@example.org,1,B",  # tie: least
        "u3,2026-10-01T10:00:00Z,2026-09-01T00:00:00Z,DE,1980,basic,true,maybe,c@example.org,1,C",  # unknown
        "u4,2026-10-01T11:00:00Z,2026-09-01T00:00:00Z,DE,1980,basic,true,false,d@example.org,1,D",  # quarantined
        "u5,2026-10-01T10:00:00Z,2026-09-01T00:00:00Z,DE,1980,basic,true,true,e@example.org,1,E",
    ]
    raw = land_text(tmp_path, pyramid, "profiles", "\n".join([PROFILE_HEADER, *rows]) + "\n")
    quarantine = raw.filter(pa.compute.equal(raw.column("_source_line"), 5)).select(["_source_file", "_source_line"])
    previous = pa.table(
        {"user_id": ["u4", "u9"], "updated_at": [utc(2026, 9, 1), utc(2026, 9, 1)], "consent_marketing": [True, True]}
    ).cast(suppression.MARKETING_SCHEMA)
    snapshot = suppression.update_marketing_consent(connect(), raw, quarantine, previous, CONSENT, withheld=False)
    assert {r["user_id"]: r["consent_marketing"] for r in snapshot.to_pylist()} == {
        "u1": False,
        "u2": False,
        "u3": None,
        "u4": True,
        "u5": True,
        "u9": True,
    }
    withheld = suppression.update_marketing_consent(connect(), raw, quarantine, previous, CONSENT, withheld=True)
    assert {r["user_id"]: r["consent_marketing"] for r in withheld.to_pylist()} == {
        "u1": None,
        "u2": None,
        "u3": None,
        "u4": True,
        "u5": None,
        "u9": True,
    }
    with pytest.raises(ValueError, match="consent.marketing_column 'nope'"):
        suppression.update_marketing_consent(
            connect(), raw, quarantine, previous, replace(CONSENT, marketing_column="nope"), withheld=False
        )


def _reach(suppressed: list[tuple[str, str]], consented: dict[str, bool | None]) -> Reach:
    suppressions = pa.table(
        {
            "user_id": [u for u, _ in suppressed],
            "channel": [c for _, c in suppressed],
            "since": [utc(2026, 10, 1)] * len(suppressed),
        }
    ).cast(suppression.SUPPRESSION_SCHEMA)
    consent = pa.table(
        {
            "user_id": list(consented),
            "updated_at": [utc(2026, 10, 1)] * len(consented),
            "consent_marketing": list(consented.values()),
        }
    ).cast(suppression.MARKETING_SCHEMA)
    return Reach(suppressions, consent, ("email", "push"))


def test_exports_hold_no_suppressed_or_unconsented_user():
    audience = audiences(
        [
            ("mid", "u1", "treatment"),  # email then modal; unsubscribed from email: gets the modal (cap 2 either way)
            ("alpha", "u2", "treatment"),  # email only; no marketing consent: nothing
            ("alpha", "u3", "treatment"),  # consent unknown: nothing on email
            ("mid", "u4", "treatment"),  # consented: email and modal
            ("hi", "u5", "treatment"),  # widget then modal, cap 1; suppressed on app: gets the modal instead
            ("hi", "u6", "treatment"),
            ("mid", "u6", "treatment"),  # suppressed everywhere
        ]
    )
    reach = _reach(
        [("u1", "email"), ("u5", "app"), ("u6", "*")],
        {"u1": True, "u2": False, "u3": None, "u4": True, "u5": True, "u6": True},
    )
    tables = touchpoint_exports(audience, CAMPAIGNS, TOUCHPOINTS, None, AS_OF, reach)
    assert exported(tables) == {
        "email": [("u4", "mid")],
        "modal": [("u1", "mid"), ("u4", "mid"), ("u5", "hi")],
        "widget": [],
        "sms": [],
    }
    assert exported(touchpoint_exports(audience, CAMPAIGNS, TOUCHPOINTS, None, AS_OF))["email"] == [
        ("u1", "mid"),
        ("u2", "alpha"),
        ("u3", "alpha"),
        ("u4", "mid"),
        ("u6", "mid"),
    ]  # without reach: as before


# --- on the small run, against the landing files ----------------------------------------------------


def _suppressed_by_day(landing: Path, pyramid_map) -> dict[date, set[tuple[str, str]]]:
    """(user, channel) opted out on or before each landing day, from the accepted landed events."""
    channel_of = {t.id: t.channel for t in pyramid_map.touchpoints}
    days = independent.landing_days(landing)
    out: dict[date, set[tuple[str, str]]] = {ds: set() for ds in days}
    for landed, row in independent.accepted_events(landing):
        if row["event_type"] == pyramid_map.consent.opt_out.event_type:
            channel = channel_of.get(row.get("touchpoint_id")) or row.get("channel") or "*"
            for ds in days:
                if ds >= landed:
                    out[ds].add((row["user_id"], channel))
    return out


def _profile_ok(row: dict, ds: date) -> bool:
    end = datetime.combine(ds + timedelta(days=1), datetime.min.time(), tzinfo=UTC) + independent.SKEW
    updated, signup = independent.parse_time(row.get("updated_at")), independent.parse_time(row.get("signup_at"))
    year = (row.get("birth_year") or "").strip()
    return (
        bool(row.get("user_id"))
        and updated is not None
        and signup is not None
        and updated <= end
        and signup <= end
        and (not year or (len(year) == 4 and year.isdigit() and 1900 <= int(year) <= ds.year))
    )


def _marketing_consent(landing: Path, ds: date, column: str) -> dict[str, bool | None]:
    """Each user's marketing consent as of `ds`: latest valid update, ties to the least consent."""
    latest: dict[str, tuple] = {}
    for day in independent.landing_days(landing):
        if day > ds:
            break
        for row in independent._csv_rows(landing, "profiles", day):
            if not _profile_ok(row, day):
                continue
            value = {"true": True, "false": False}.get((row.get(column) or "").strip().lower())
            key = (independent.parse_time(row["updated_at"]), -{None: 0, False: 1, True: 2}[value])
            if row["user_id"] not in latest or key > latest[row["user_id"]][0]:
                latest[row["user_id"]] = (key, value)
    return {user: value for user, (_, value) in latest.items()}


def test_the_runs_exports_hold_no_opted_out_or_unconsented_user(run):
    pmap, landing = run.pyramid_map, run.lake.landing
    suppressed = _suppressed_by_day(landing, pmap)
    checked = excluded = 0
    for day in run.days:
        consent = _marketing_consent(landing, day, pmap.consent.marketing_column)
        treated = {(r["user_id"], r["campaign_id"]) for r in run.sent[day] if r["arm"] == "treatment"}
        for tp in pmap.touchpoints:
            users = pq.read_table(run.lake.partition_file("touchpoints", tp.id, day)).column("user_id").to_pylist()
            for user in users:
                assert (user, tp.channel) not in suppressed[day] and (user, "*") not in suppressed[day], (day, tp.id)
                if tp.channel in pmap.consent.marketing_channels:
                    assert consent.get(user) is True, (day, tp.id)
            checked += len(users)
            reached = {c.id for c in pmap.campaigns if tp.id in c.touchpoints}
            blocked = {
                u
                for u, c in treated
                if c in reached
                and (
                    (u, tp.channel) in suppressed[day]
                    or (tp.channel in pmap.consent.marketing_channels and consent.get(u) is not True)
                )
            }
            excluded += len(blocked)
    assert checked > 0 and excluded > 0  # the rules had users to keep out, and exports still reach others
