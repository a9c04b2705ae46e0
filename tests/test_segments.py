from datetime import date

import duckdb
import pyarrow as pa
import pytest

from assets.features import monotone_windowed
from assets.pyramid_map import SegmentDefinition, load_map
from assets.segments import (
    MEMBERSHIP_SCHEMA,
    segment_membership,
    segment_overlap,
    segment_summary,
)
from assets.sql_guard import UnsafeExpression, sandboxed_connection

AS_OF = date(2026, 10, 10)
MONOTONE = monotone_windowed(load_map())  # the sample map's windowed sums read on their lower bound


def definition(segment_id: str, rule: str, kind: str = "value", min_size: int = 1) -> SegmentDefinition:
    return SegmentDefinition(id=segment_id, kind=kind, description="", owner="", rule=rule, min_size=min_size)


def features() -> pa.Table:
    return pa.table(
        {
            "user_id": ["u1", "u2", "u3", "u4", "u5"],
            "as_of": [AS_OF] * 5,
            "consent_personalization": [True, True, False, None, True],
            "deposits_30d": [2, 1, 5, 5, None],
            "searches_7d": [1, 3, 1, 1, 0],
            "tenure_days": [400, 10, 10, 10, 20],
        }
    )


def membership(rows: dict[str, list[str]]) -> pa.Table:
    pairs = [(segment_id, user_id) for segment_id, users in rows.items() for user_id in users]
    return pa.table({"segment_id": [p[0] for p in pairs], "user_id": [p[1] for p in pairs]})


def test_rule_membership_holds_only_consented_users_meeting_the_rule():
    definitions = [
        definition("steady_depositors", "deposits_30d >= 2"),
        definition("searchers", "searches_7d >= 1 AND tenure_days <= 30", kind="intent"),
        definition("nobody", "deposits_30d > 100"),
    ]
    result = segment_membership(features(), definitions, AS_OF, monotone=MONOTONE)

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
        segment_membership(features(), [definition("fine", "deposits_30d >= 2"), unsafe], AS_OF, monotone=MONOTONE)
    with pytest.raises(UnsafeExpression, match="unknown column 'password'"):
        segment_membership(features(), [definition("unknown", "password = 'x'")], AS_OF, monotone=MONOTONE)


def test_sandbox_reads_registered_arrow_but_no_files_and_stays_locked():
    con = sandboxed_connection()
    con.register("t", pa.table({"a": [1, 2, 3]}))
    assert con.sql("SELECT sum(a) FROM t").fetchall() == [(6,)]
    with pytest.raises(duckdb.Error, match="disabled"):
        con.sql("SELECT * FROM read_csv('/etc/hostname')").fetchall()
    with pytest.raises(duckdb.Error, match="locked"):
        con.execute("SET enable_external_access = true")


def test_sandbox_cursors_share_the_settings_but_not_the_tables():
    first, second = sandboxed_connection(), sandboxed_connection()
    first.register("mine", pa.table({"a": [1]}))
    with pytest.raises(duckdb.CatalogException, match="mine"):
        second.sql("SELECT * FROM mine").fetchall()
    settings = "SELECT current_setting('TimeZone'), current_setting('python_enable_replacements')"
    assert second.sql(settings).fetchall() == [("UTC", False)]


def test_sandbox_never_reads_a_python_variable_by_name():
    hidden = pa.table({"a": [1]})  # noqa: F841 (the name a replacement scan would find)
    con = sandboxed_connection()
    with pytest.raises(duckdb.CatalogException, match="hidden"):
        con.sql("SELECT * FROM hidden").fetchall()


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
        (
            r["segment_id"],
            r["kind"],
            r["size"],
            r["share"],
            r["min_size"],
            r["usable"],
            r["previous_size"],
            r["entered"],
            r["exited"],
            r["jaccard"],
        )
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
        ("a", 2, 0.5, True),
        ("b", 0, 0.0, False),
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


# --- unsafe rules: refused at load_map and again at evaluation, naming the segment and the part -------

UNSAFE_RULES = [
    ("subquery", "deposits_30d > (SELECT 1)", "(SELECT 1)"),
    ("read_csv", "deposits_30d > 1 OR read_csv('/etc/passwd') IS NULL", "READ_CSV('/etc/passwd')"),
    ("read_text", "length(read_text('/etc/passwd')) > 0", "READ_TEXT('/etc/passwd')"),
    ("read_parquet", "EXISTS (SELECT * FROM read_parquet('x.parquet'))", "READ_PARQUET('x.parquet')"),
    ("copy", "COPY (SELECT 1) TO '/tmp/x.csv'", "(Copy)"),
    ("attach", "ATTACH '/tmp/x.duckdb' AS x", "(Attach)"),
    ("pragma", "PRAGMA database_list", "(Pragma)"),
    ("set", "SET enable_external_access = true", "(Set)"),
    ("semicolon", "deposits_30d > 1; DROP TABLE x", "no ';'"),
    ("unknown_column", "password = 'x'", "unknown column 'password'"),
    ("other_function", "deposits_30d > 1 OR getenv('HOME') IS NULL", "GETENV('HOME')"),
]


def write_map(tmp_path, extra_segments=(), scored=None, **segment_keys):
    """The project's map with extra segment definitions (and scored / other `segments` keys replaced)."""
    import yaml

    from assets.pyramid_map import DEFAULT_MAP_PATH

    raw = yaml.safe_load(DEFAULT_MAP_PATH.read_text())
    raw["segments"]["definitions"] += list(extra_segments)
    if scored is not None:  # campaigns keep only their rule segments: the scored ones may be gone
        raw["segments"]["scored"] = scored
        rules = {d["id"] for d in raw["segments"]["definitions"]}
        for campaign in raw["campaigns"]:
            campaign["segments"] = [s for s in campaign["segments"] if s in rules]
    raw["segments"].update(segment_keys)
    path = tmp_path / "pyramid.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize("name, rule, part", UNSAFE_RULES, ids=[r[0] for r in UNSAFE_RULES])
def test_unsafe_rule_refused_by_load_map(tmp_path, name, rule, part):
    from assets.pyramid_map import MapError, load_map

    path = write_map(tmp_path, [{"id": f"evil_{name}", "kind": "value", "rule": rule}])
    with pytest.raises(MapError) as raised:
        load_map(path)
    message = str(raised.value)
    assert f"segment 'evil_{name}'" in message and part in message
    assert f"{path}:" in message and "segments.definitions[5].rule" in message


@pytest.mark.parametrize("name, rule, part", UNSAFE_RULES, ids=[r[0] for r in UNSAFE_RULES])
def test_unsafe_rule_refused_by_segment_membership(name, rule, part):
    with pytest.raises(UnsafeExpression) as raised:
        segment_membership(
            features(),
            [definition("fine", "deposits_30d >= 2"), definition(f"evil_{name}", rule)],
            AS_OF,
            monotone=MONOTONE,
        )
    assert f"segment 'evil_{name}'" in str(raised.value) and part in str(raised.value)


def test_a_new_segment_is_a_map_edit_only(tmp_path):
    from assets.pyramid_map import load_map

    path = write_map(
        tmp_path,
        [
            {
                "id": "premium_searchers",
                "kind": "intent",
                "description": "Premium, searched.",
                "owner": "growth-team",
                "rule": "plan = 'premium' and searches_7d >= 1",
            }
        ],
    )
    pyramid_map = load_map(path)
    from assets.features import features_schema

    schema = features_schema(pyramid_map, list(pyramid_map.segments.windows))
    given = {
        "user_id": ["u1", "u2", "u3", "u4", "u5"],
        "plan": ["premium", "premium", "premium", "basic", "premium"],
        "consent_personalization": [True, True, False, True, True],
        "searches_7d": [1, 2, 1, 1, 0],
    }
    table = pa.table({f.name: given.get(f.name, pa.nulls(5, f.type)) for f in schema}).cast(schema)
    result = segment_membership(table, pyramid_map.segments.definitions, AS_OF, monotone=MONOTONE)
    rows = [(r["user_id"], r["kind"]) for r in result.to_pylist() if r["segment_id"] == "premium_searchers"]
    assert rows == [("u1", "intent"), ("u2", "intent")]  # u3: no consent; u4: basic; u5: no search
    summary = segment_summary(result, None, 4, pyramid_map.segments.definitions, AS_OF).to_pylist()
    assert [(r["size"], r["usable"]) for r in summary if r["segment_id"] == "premium_searchers"] == [(2, False)]


# --- scored segments: RFM ---------------------------------------------------------------------------

from datetime import UTC, datetime, timedelta  # noqa: E402

from assets.pyramid_map import (  # noqa: E402
    LIFECYCLE_STAGES,
    RFM_GROUPS,
    LifecycleScoring,
    RfmScoring,
)
from assets.rfm import rfm_group  # noqa: E402
from assets.segment_baselines import segment_baselines  # noqa: E402
from assets.segments import churning_segments  # noqa: E402

RFM = RfmScoring(window_days=90, groups=RFM_GROUPS, min_size=1)
LIFECYCLE = LifecycleScoring(
    new_days=30, active_days=7, at_risk_days=30, dormant_days=90, stages=LIFECYCLE_STAGES, min_size=1
)


def scored_definitions(method, names, scoring, kind):
    return [
        SegmentDefinition(
            id=f"{method}_{n}",
            kind=kind,
            description="",
            owner="",
            rule="",
            min_size=1,
            method=method,
            group=n,
            scoring=scoring,
        )
        for n in names
    ]


def days_ago(n):
    return None if n is None else datetime(AS_OF.year, AS_OF.month, AS_OF.day, 12, tzinfo=UTC) - timedelta(days=n)


def rfm_features(rows):
    """rows: (user, consent, recency days or None, txns_90d, monetary)."""
    return pa.table(
        {
            "user_id": [r[0] for r in rows],
            "as_of": [AS_OF] * len(rows),
            "consent_personalization": [r[1] for r in rows],
            "last_txn_at": pa.array([days_ago(r[2]) for r in rows], pa.timestamp("us", tz="UTC")),
            "txns_90d": pa.array([r[3] for r in rows], pa.int64()),
            "balance_in_90d": [r[4] * 0.75 for r in rows],
            "balance_out_90d": [r[4] * 0.25 for r in rows],
            "days_since_last_seen": pa.array([None] * len(rows), pa.int64()),
            "tenure_days": pa.array([400] * len(rows), pa.int64()),
        }
    )


def test_rfm_group_map_is_a_partition_of_the_grid():
    cells = {(r, f): rfm_group(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert set(cells.values()) == set(RFM_GROUPS)
    assert (cells[5, 5], cells[5, 4], cells[4, 5], cells[3, 4]) == ("champions", "champions", "loyal", "loyal")
    assert (cells[5, 1], cells[4, 1], cells[4, 3], cells[3, 3]) == (
        "new",
        "promising",
        "potential_loyalists",
        "need_attention",
    )
    assert (cells[3, 2], cells[2, 4], cells[1, 5], cells[2, 1], cells[1, 1]) == (
        "about_to_sleep",
        "at_risk",
        "cannot_lose_them",
        "hibernating",
        "lost",
    )


def test_rfm_scores_on_known_quintiles():
    # u0..u9: recency 10 - i days, frequency i + 1, monetary 100 (10 - i): ten distinct values each, so
    # quintiles pair users up: R = F = 1 + i // 2, M = 1 + (9 - i) // 2.
    rows = [(f"u{i}", True, 10 - i, i + 1, 100.0 * (10 - i)) for i in range(10)]
    rows += [("no_consent", False, 1, 50, 5000.0), ("no_txn", True, None, 0, 0.0)]
    definitions = scored_definitions("rfm", RFM_GROUPS, RFM, "value")
    result = segment_membership(rfm_features(rows[::-1]), definitions, AS_OF, monotone=MONOTONE).to_pylist()

    got = {r["user_id"]: (r["segment_id"], r["score"], r["kind"]) for r in result}
    expected = {}
    for i in range(10):
        r = f = 1 + i // 2
        m = 1 + (9 - i) // 2
        expected[f"u{i}"] = (f"rfm_{rfm_group(r, f)}", float(100 * r + 10 * f + m), "value")
    assert got == expected
    assert [got[f"u{i}"][0] for i in (0, 2, 4, 6, 8)] == [
        "rfm_lost",
        "rfm_hibernating",
        "rfm_need_attention",
        "rfm_loyal",
        "rfm_champions",
    ]
    assert got["u9"][1] == 551.0 and got["u0"][1] == 115.0


def test_rfm_ties_share_one_quintile_whatever_the_order():
    # frequencies 1, 1, 2, 3, 3 -> cume_dist 2/5, 2/5, 3/5, 1, 1 -> F = ceil(5 * cume_dist) = 2, 2, 3, 5, 5
    rows = [
        ("a", True, 5, 1, 10.0),
        ("b", True, 5, 1, 10.0),
        ("c", True, 5, 2, 10.0),
        ("d", True, 5, 3, 10.0),
        ("e", True, 5, 3, 10.0),
    ]
    definitions = scored_definitions("rfm", RFM_GROUPS, RFM, "value")
    forward = segment_membership(rfm_features(rows), definitions, AS_OF, monotone=MONOTONE)
    backward = segment_membership(rfm_features(rows[::-1]), definitions, AS_OF, monotone=MONOTONE)
    assert forward == backward
    # every recency and monetary value ties: the tie is the whole population, R = M = 5
    assert {r["user_id"]: r["score"] for r in forward.to_pylist()} == {
        "a": 525.0,
        "b": 525.0,
        "c": 535.0,
        "d": 555.0,
        "e": 555.0,
    }


def test_rfm_only_materializes_the_listed_groups():
    rows = [(f"u{i}", True, 10 - i, i + 1, 100.0 * (10 - i)) for i in range(10)]
    definitions = scored_definitions("rfm", ("champions", "lost"), RFM, "value")
    result = segment_membership(rfm_features(rows), definitions, AS_OF, monotone=MONOTONE).to_pylist()
    assert [(r["segment_id"], r["user_id"]) for r in result] == [
        ("rfm_champions", "u8"),
        ("rfm_champions", "u9"),
        ("rfm_lost", "u0"),
        ("rfm_lost", "u1"),
    ]


# --- scored segments: lifecycle ---------------------------------------------------------------------


def test_lifecycle_stages_from_recency_thresholds():
    rows = [  # user, consent, tenure, days since last seen, days since last transaction
        ("new_idle", True, 5, 50, None),
        ("new_zero", True, 0, None, None),
        ("seen_today", True, 400, 0, None),
        ("txn_3d", True, 400, 20, 3),
        ("seen_6d", True, 400, 6, None),
        ("seen_7d", True, 400, 7, None),
        ("seen_29d", True, 400, 29, 40),
        ("seen_30d", True, 400, 30, None),
        ("txn_89d", True, 400, None, 89),
        ("never", True, 400, None, None),
        ("no_consent", False, 400, 0, 0),
        ("tenure_30", True, 30, 1, None),
    ]
    table = pa.table(
        {
            "user_id": [r[0] for r in rows],
            "as_of": [AS_OF] * len(rows),
            "consent_personalization": [r[1] for r in rows],
            "tenure_days": pa.array([r[2] for r in rows], pa.int64()),
            "days_since_last_seen": pa.array([r[3] for r in rows], pa.int64()),
            "last_txn_at": pa.array([days_ago(r[4]) for r in rows], pa.timestamp("us", tz="UTC")),
        }
    )
    definitions = scored_definitions("lifecycle", LIFECYCLE_STAGES, LIFECYCLE, "behavioral")
    got = {
        r["user_id"]: (r["segment_id"].removeprefix("lifecycle_"), r["score"])
        for r in segment_membership(table, definitions, AS_OF, monotone=MONOTONE).to_pylist()
    }
    assert got == {
        "new_idle": ("new", 50.0),
        "new_zero": ("new", None),
        "seen_today": ("active", 0.0),
        "txn_3d": ("active", 3.0),
        "seen_6d": ("active", 6.0),
        "seen_7d": ("at_risk", 7.0),
        "seen_29d": ("at_risk", 29.0),
        "seen_30d": ("dormant", 30.0),
        "txn_89d": ("dormant", 89.0),
        "never": ("churned", None),
        "tenure_30": ("active", 1.0),
    }


def test_scored_segments_from_the_map(tmp_path):
    from assets.pyramid_map import MapError, load_map

    m = load_map(
        write_map(
            tmp_path,
            scored={
                "rfm": {"window_days": 30, "groups": ["champions"], "min_size": 7},
                "lifecycle": {"stages": ["active", "churned"]},
            },
        )
    )
    scored = [(d.id, d.kind, d.method, d.min_size) for d in m.segments.definitions if d.method != "rule"]
    assert scored == [
        ("rfm_champions", "value", "rfm", 7),
        ("lifecycle_active", "behavioral", "lifecycle", 1000),
        ("lifecycle_churned", "behavioral", "lifecycle", 1000),
    ]
    assert m.segments.rfm.window_days == 30 and m.segments.lifecycle.dormant_days == 90
    bad = write_map(
        tmp_path,
        scored={
            "rfm": {"window_days": 60, "groups": ["champs"]},
            "lifecycle": {"active_days": 40, "dormant_days": 120},
            "clv": {},
        },
    )
    with pytest.raises(MapError) as raised:
        load_map(bad)
    message = str(raised.value)
    for part in (
        "segments.scored.rfm.window_days: must be one of segments.windows",
        "segments.scored.rfm.groups: unknown name 'champs'",
        "segments.scored.lifecycle: needs 0 < active_days <= at_risk_days <= dormant_days",
        "segments.scored.lifecycle.dormant_days: must be at most the largest window",
        "segments.scored.clv: unknown scoring",
    ):
        assert part in message


# --- stability over three hand-made as-of snapshots ------------------------------------------------


def snapshot(day, members):
    users = ["u1", "u2", "u3", "u4"]
    return pa.table(
        {
            "user_id": users,
            "as_of": [day] * 4,
            "consent_personalization": [True] * 4,
            "deposits_30d": [1 if u in members else 0 for u in users],
        }
    )


def test_stability_since_and_median_days_over_three_snapshots():
    d1, d2, d3 = AS_OF, AS_OF + timedelta(days=1), AS_OF + timedelta(days=2)
    definitions = [definition("a", "deposits_30d >= 1", min_size=1), definition("b", "deposits_30d > 5", min_size=0)]
    m1 = segment_membership(snapshot(d1, {"u1", "u2", "u3"}), definitions, d1, None, monotone=MONOTONE)
    m2 = segment_membership(snapshot(d2, {"u2", "u3", "u4"}), definitions, d2, m1, monotone=MONOTONE)
    m3 = segment_membership(snapshot(d3, {"u1", "u3", "u4"}), definitions, d3, m2, monotone=MONOTONE)

    assert [(r["user_id"], r["since"]) for r in m2.to_pylist()] == [("u2", d1), ("u3", d1), ("u4", d2)]
    assert [(r["user_id"], r["since"]) for r in m3.to_pylist()] == [("u1", d3), ("u3", d1), ("u4", d2)]  # u1 restarts

    s1 = segment_summary(m1, None, 4, definitions, d1).to_pylist()
    s2 = segment_summary(m2, m1, 4, definitions, d2).to_pylist()
    s3 = segment_summary(m3, m2, 4, definitions, d3).to_pylist()
    pick = ("size", "previous_size", "entered", "exited", "jaccard", "churn_share", "median_days_in_segment")
    assert [s1[0][k] for k in pick] == [3, None, None, None, None, None, 1.0]
    assert [s2[0][k] for k in pick] == [3, 3, 1, 1, 0.5, pytest.approx(2 / 3), 2.0]  # days 2, 2, 1
    assert [s3[0][k] for k in pick] == [3, 3, 1, 1, 0.5, pytest.approx(2 / 3), 2.0]  # days 1, 3, 2
    assert [s3[1][k] for k in pick] == [0, 0, 0, 0, None, None, None]  # b: empty both days
    assert s3[0]["method"] == "rule"
    summary = segment_summary(m3, m2, 4, definitions, d3)
    assert churning_segments(summary, 0.5) == ["a"] and churning_segments(summary, 0.7) == []


# --- baselines: test segments early ------------------------------------------------------------------


def test_segment_baselines_against_all_eligible_users():
    from assets.measures import daily_schema
    from assets.pyramid_map import Metric

    users = [f"u{i}" for i in range(6)]
    table = pa.table(
        {"user_id": users, "as_of": [AS_OF] * 6, "consent_personalization": [True, True, True, True, True, False]}
    )
    membership_table = pa.table({"segment_id": ["a", "a", "b"], "user_id": ["u0", "u1", "u2"]})
    activity = pa.Table.from_pylist(
        [  # deposits on as_of by u0, u1 (members of a), u3 and u5 (not eligible)
            {"user_id": u, "activity_date": AS_OF, "deposits": 1} for u in ("u0", "u1", "u3", "u5")
        ]
        + [{"user_id": "u2", "activity_date": AS_OF - timedelta(days=1), "deposits": 1}],
        schema=daily_schema(load_map().measures),
    )
    metric = Metric(id="deposit_rate", description="", window_days=1, condition="deposits > 0")
    definitions = [definition("a", "true"), definition("b", "true", kind="intent"), definition("c", "true")]

    rows = segment_baselines(membership_table, table, activity, [metric], definitions, AS_OF).to_pylist()
    pick = [
        (
            r["segment_id"],
            r["kind"],
            r["segment_users"],
            r["segment_successes"],
            r["segment_rate"],
            r["eligible_users"],
            r["eligible_successes"],
            r["eligible_rate"],
            r["ratio"],
        )
        for r in rows
    ]
    assert pick == [
        ("a", "value", 2, 2, 1.0, 5, 3, 0.6, pytest.approx(1 / 0.6)),
        ("b", "intent", 1, 0, 0.0, 5, 3, 0.6, 0.0),  # u2 deposited the day before: outside the window
        ("c", "value", 0, 0, None, 5, 3, 0.6, None),
    ]
    # a against the others (u2, u3, u4: 1 of 3): pooled 3/5, z = (1 - 1/3) / sqrt(0.24 (1/2 + 1/3))
    import math

    z = (1 - 1 / 3) / math.sqrt(0.6 * 0.4 * (1 / 2 + 1 / 3))
    assert rows[0]["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert rows[2]["p_value"] is None


# --- the CLI: `pyramid segments` reads the lake, without Dagster or Great Expectations ---------------


def test_cli_segments_prints_summary_and_baselines_from_the_lake(tmp_path):
    import subprocess
    import sys

    from assets.lake import Lake, write_parquet_atomic
    from assets.segment_baselines import BASELINE_SCHEMA

    lake = Lake(tmp_path)
    definitions = [definition("steady", "deposits_30d >= 1", min_size=2), definition("rare", "deposits_30d > 5")]
    m1 = segment_membership(snapshot(AS_OF, {"u1", "u2", "u3"}), definitions, AS_OF, monotone=MONOTONE)
    write_parquet_atomic(
        segment_summary(m1, None, 4, definitions, AS_OF), lake.partition_file("segments", "segment_summary", AS_OF)
    )
    baselines = pa.Table.from_pylist(
        [{"as_of": AS_OF, "segment_id": "steady", "kind": "value", "metric": "deposit_rate", "ratio": 1.5}],
        schema=BASELINE_SCHEMA,
    )
    write_parquet_atomic(baselines, lake.partition_file("segments", "segment_baselines", AS_OF))
    script = (
        "import sys; from pipelines.cli import main; code = main(sys.argv[1:]); "
        "assert 'dagster' not in sys.modules and 'great_expectations' not in sys.modules; sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "--data-root", str(tmp_path), "segments"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": ""},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"Segments as of {AS_OF}" in out and "deposit_rate" in out
    steady = next(line for line in out.splitlines() if "steady" in line)
    assert "│    3 │" in steady and "75.00%" in steady and "yes" in steady and "×1.50" in steady
    missing = subprocess.run(
        [sys.executable, "-c", script, "--data-root", str(tmp_path), "segments", "--date", "2020-01-01"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "no segment summary for 2020-01-01" in missing.stdout
