"""Consequences flow upward: a withheld column blocks exactly the segments, campaigns and goals that
need it (assets.lineage.blocked_by), and the column status table records the verdict."""

from __future__ import annotations

import json

import pytest

from assets import actionable
from assets.lake import connect
from assets.lineage import blocked_by
from assets.pyramid_map import load_map
from assets.quality.outcome import column_status_table
from tests.test_actionable import DS, KNOWN_USERS, TXN_HEADER, land_text


@pytest.fixture(scope="module")
def pyramid():
    return load_map()


def transaction_segments(pyramid) -> list[str]:
    scored = [d.id for d in pyramid.segments.definitions if d.method in ("rfm", "lifecycle")]
    return sorted(["card_regulars", "high_inflow", "steady_depositors", *scored])


def test_withheld_status_blocks_every_transaction_based_item(pyramid):
    blocked = blocked_by(pyramid, [("transactions", "status", "status__be_in_set")])
    # computed by hand from pyramid.yaml: rules on deposits/card payments/balance_in, the scored
    # segments (RFM and lifecycle read completed transactions), their campaigns (budget_tips through
    # rfm_loyal) and goals, and the metrics over deposits and card payments
    assert sorted(blocked.segments) == transaction_segments(pyramid)
    assert sorted(blocked.campaigns) == ["budget_tips", "card_cashback", "savings_nudge"]
    assert sorted(blocked.goals) == ["budget_adoption", "card_usage", "grow_deposits", "time_to_value"]
    assert sorted(blocked.metrics) == ["card_spend_rate", "deposit_rate", "time_to_first_deposit"]
    assert blocked.segments["card_regulars"] == ["transactions.status (status__be_in_set)"]
    unblocked = {d.id for d in pyramid.segments.definitions} - set(blocked.segments)
    assert {"recent_searchers", "new_users"} <= unblocked
    assert blocked.campaigns["budget_tips"] == ["transactions.status (status__be_in_set)"]
    assert "transactions.status (status__be_in_set)" in blocked.describe()


def test_withheld_consent_blocks_every_segment_and_a_harmless_column_nothing(pyramid):
    consent = blocked_by(pyramid, [("profiles", "consent_personalization")])
    assert sorted(consent.segments) == sorted(d.id for d in pyramid.segments.definitions)
    assert sorted(consent.campaigns) == sorted(c.id for c in pyramid.campaigns)
    assert not blocked_by(pyramid, [("events", "channel"), ("transactions", "merchant_category")])
    assert not blocked_by(pyramid, [])


def test_session_id_blocks_the_north_star_metric_only(pyramid):
    blocked = blocked_by(pyramid, [("events", "session_id")])
    assert list(blocked.metrics) == [pyramid.north_star.metric]
    assert not blocked.segments and not blocked.goals


def test_failing_status_column_is_withheld_and_recorded(tmp_path, pyramid):
    # 3 of 4 transactions have a status outside the allowed set: status__be_in_set (critical) fails
    rows = [
        "t1,u1,2026-10-01T10:00:00Z,10,EUR,deposit,,completed",
        "t2,u1,2026-10-01T10:00:00Z,10,EUR,deposit,,done",
        "t3,u2,2026-10-01T10:00:00Z,10,EUR,deposit,,done",
        "t4,u3,2026-10-01T10:00:00Z,10,EUR,card_payment,food,ok",
    ]
    raw = land_text(tmp_path, pyramid, "transactions", "\n".join([TXN_HEADER, *rows]) + "\n")
    result = actionable.clean_transactions(connect(), raw, DS, KNOWN_USERS, None, pyramid.actionable)
    assert result.withheld == ["status"]
    assert result.table.num_rows == 4 and result.table.column("status").null_count == 4
    assert result.quarantine.num_rows == 0 and result.accounting()["balanced"]
    status = {r["expectation"]: r for r in column_status_table(result.validation, "transactions", DS).to_pylist()}
    assert status["status__be_in_set"]["status"] == "withheld"
    assert status["status__be_in_set"]["column"] == "status" and status["status__be_in_set"]["mostly"] == 0.99
    assert json.loads(status["status__be_in_set"]["observed_value"]) == 0.25
    assert status["merchant_category__not_be_null"]["status"] == "promoted"
    assert all(r["ds"] == DS and r["source"] == "transactions" for r in status.values())


def test_a_withheld_column_blocks_its_items_in_a_dagster_run_and_the_rest_materializes(tmp_path, pyramid):
    """Two days through Dagster; on the second, every transaction's status is outside the allowed set,
    so `status__be_in_set` withholds the column: `inputs_promoted` fails naming what it blocks, the
    blocked segments have no members that day, and every asset still materializes."""
    import csv

    import dagster as dg
    import pyarrow.parquet as pq

    from assets.lake import Lake
    from pipelines.definitions import NIGHTLY_JOB, build_definitions
    from pipelines.resources import PyramidResource
    from pipelines.runner import QUIET
    from pipelines.sample.generate import generate_sample

    generate_sample(tmp_path / "landing", users=400, days=2, seed=3, pyramid_map=pyramid)
    day1, day2 = pyramid.start_date, pyramid.start_date.fromordinal(pyramid.start_date.toordinal() + 1)
    [path] = (tmp_path / "landing" / "transactions" / day2.isoformat()).glob("*.csv")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) > 20
    for row in rows:
        row["status"] = "done"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    defs = build_definitions(pyramid, PyramidResource(data_root=str(tmp_path)))
    job, instance = defs.resolve_job_def(NIGHTLY_JOB), dg.DagsterInstance.ephemeral()
    results = {
        d: job.execute_in_process(partition_key=d.isoformat(), instance=instance, run_config=QUIET)
        for d in (day1, day2)
    }
    assert all(r.success for r in results.values())
    [inputs] = [e for e in results[day2].get_asset_check_evaluations() if e.check_name == "inputs_promoted"]
    assert not inputs.passed
    named = {k: v.value for k, v in inputs.metadata.items()}
    assert "transactions.status (status__be_in_set)" in named["withheld"]
    for kind, items in (
        ("segments", transaction_segments(load_map())),
        ("campaigns", ["budget_tips", "card_cashback", "savings_nudge"]),
        ("goals", ["budget_adoption", "card_usage", "grow_deposits", "time_to_value"]),
    ):
        assert sorted(i.split(" (")[0] for i in named[f"blocked_{kind}"].split(", ")) == items, kind
    [day1_inputs] = [e for e in results[day1].get_asset_check_evaluations() if e.check_name == "inputs_promoted"]
    assert day1_inputs.passed

    lake = Lake(tmp_path)
    members = pq.read_table(lake.partition_file("segments", "segment_membership", day2)).to_pylist()
    assert not {m["segment_id"] for m in members} & {"card_regulars", "high_inflow", "steady_depositors"}
    assert {m["segment_id"] for m in members} & {"recent_searchers", "new_users"}  # the others still computed
    audiences = {
        r["campaign_id"] for r in pq.read_table(lake.partition_file("campaigns", "audiences", day2)).to_pylist()
    }
    assert not audiences & {"card_cashback", "savings_nudge"}
    goals_measured = {
        r["goal_id"]
        for r in pq.read_table(lake.partition_file("goals", "goal_metrics", day2)).to_pylist()
        if r["window"] == "day"
    }
    assert not goals_measured & {"budget_adoption", "card_usage", "grow_deposits"}
    materialized = {e.asset_key.to_user_string() for e in results[day2].get_asset_materialization_events()}
    assert materialized == {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert lake.has_partition("goals", "north_star", day2) and lake.warehouse.exists()
    (features_event,) = [m for m in results[day2].asset_materializations_for_node("user_features")]
    lineage = features_event.metadata["dagster/column_lineage"].value.deps_by_column  # shown in the Dagster UI
    assert {(d.asset_key.to_user_string(), d.column_name) for d in lineage["avg_deposit_amount_30d"]} == {
        ("user_daily", "deposit_amount"),
        ("user_daily", "deposits"),
    }


def test_a_withheld_amount_blocks_the_scored_segments_that_read_it():
    pyramid = load_map()
    blocked = blocked_by(pyramid, [("transactions", "amount", "amount__be_between")])
    rfm = [d.id for d in pyramid.segments.definitions if d.method == "rfm"]
    assert rfm and all(segment in blocked.segments for segment in rfm)  # monetary reads the amounts
    assert "recent_searchers" not in blocked.segments  # a rule over searches does not


def test_every_feature_has_lineage(pyramid):
    """Each user_features column (bar the keys and the coverage flags, which the calendar decides) is fed by
    at least one landing column, so a rule on any feature is blocked when that column is withheld."""
    from assets.features import feature_column_names
    from assets.lineage import column_lineage

    windows = list(pyramid.segments.windows)
    fed = set().union(*column_lineage(pyramid).values())
    flags = {"user_id", "as_of", "history_days", *(f"complete_{w}d" for w in windows)}
    orphans = [c for c in feature_column_names(pyramid, windows) if c not in fed | flags]
    assert orphans == []


def test_a_withheld_amount_blocks_a_rule_on_an_average_amount(pyramid):
    from dataclasses import replace

    rule = replace(pyramid.segments.definitions[0], id="big_savers", rule="avg_deposit_amount_30d > 500")
    custom = replace(pyramid, segments=replace(pyramid.segments, definitions=(rule,)), campaigns=(), goals=())
    blocked = blocked_by(custom, [("transactions", "amount", "amount__be_between")])
    assert blocked.segments == {"big_savers": ["transactions.amount (amount__be_between)"]}


def test_check_warns_when_a_campaign_selects_on_what_its_goal_measures(pyramid, tmp_path):
    from dataclasses import replace

    from assets.lineage import selection_warnings
    from assets.pyramid_map import Context

    assert selection_warnings(pyramid) == []  # the sample map cross-sells: nothing selects on its own goal
    nudge = next(c for c in pyramid.campaigns if c.id == "savings_nudge")  # goal grow_deposits: deposits > 0
    biased = replace(nudge, segments=("steady_depositors",), contexts=(Context(id="lapsed", when="deposits_7d = 0"),))
    custom = replace(pyramid, campaigns=tuple(biased if c.id == "savings_nudge" else c for c in pyramid.campaigns))
    tail = "which goal grow_deposits measures: treatment changes who is selected, so the arms stop being comparable"
    assert selection_warnings(custom) == [
        f"campaign savings_nudge: segment steady_depositors selects on deposits_30d, computed from deposits, {tail}",
        f"campaign savings_nudge: context lapsed selects on deposits_7d, computed from deposits, {tail}",
    ]
    a_a = replace(biased, treated=False)  # nobody treated: what it selects on cannot move
    assert (
        selection_warnings(
            replace(custom, campaigns=tuple(a_a if c.id == "savings_nudge" else c for c in custom.campaigns))
        )
        == []
    )
    blocked = blocked_by(custom, [("transactions", "amount", "")])
    assert "transactions.amount" in blocked.campaigns["savings_nudge"]  # steady_depositors reads deposits
    only_context = replace(
        custom,
        campaigns=tuple(
            replace(c, segments=("recent_searchers",)) if c.id == "savings_nudge" else c for c in custom.campaigns
        ),
    )
    assert blocked_by(only_context, [("transactions", "txn_type", "")]).campaigns["savings_nudge"] == [
        "transactions.txn_type"
    ]
