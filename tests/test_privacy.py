"""Privacy by construction (DESIGN rule 7), proven by scanning every Parquet file of a real run and the
catalog: no PII above raw, no unconsented user targeted, no erased user anywhere; and the quarantine's
exact counts per reason against the generator's defect plan. Reuses the session's Dagster run
(tests/conftest.py), plus the pure erasure function on a hand-made lake."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from assets import erasure, user_index
from assets.contract import SCHEMAS
from assets.lake import Lake, write_parquet_atomic
from pipelines.layers.erasure import apply_erasure, scan_for_ids
from tests.pyramid_run import PII, _lake_rows

SOURCES_WITH_SUITES = ("events", "transactions", "profiles")


def _files_above_raw(lake: Lake) -> list[Path]:
    return [
        p
        for p in sorted((lake.root / "lake").rglob("*.parquet"))
        if p.relative_to(lake.root / "lake").parts[0] != "raw"
    ]


def _catalog(lake: Lake) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(lake.warehouse), read_only=True)


# --- erase_users on a hand-made lake -------------------------------------------------------------


def test_erase_users_rewrites_only_the_files_that_mention_a_user(tmp_path):
    lake = Lake(tmp_path)
    d1, d2 = date(2026, 10, 1), date(2026, 10, 2)
    events = {
        d1: pa.table({"event_id": ["e1", "e2", "e3"], "user_id": ["u1", "u2", None]}),
        d2: pa.table({"event_id": ["e4"], "user_id": ["u2"]}),
    }
    for d, t in events.items():
        write_parquet_atomic(t, lake.partition_file("actionable", "events", d))
    write_parquet_atomic(
        pa.table(
            {
                "source": ["events", "events", "events"],
                "payload": [
                    json.dumps({"user_id": "u1"}),
                    json.dumps({"user_id": "u3"}),
                    json.dumps({"user_id": None, "_raw_text": '{"user_id":"u1",'}),
                ],
            }
        ),
        lake.partition_file("actionable", "quarantine_events", d1),
    )
    write_parquet_atomic(
        pa.table({"user_id": [None, "u2"], "_raw_text": ['x,u1,"broken', None]}),
        lake.partition_file("raw", "events", d1),
    )
    write_parquet_atomic(
        pa.table({"user_id": ["u1"], "requested_at": ["2026-10-02"]}),
        lake.partition_file("raw", "erasure_requests", d2),
    )
    write_parquet_atomic(
        pa.table({"segment_id": ["s"], "size": [2]}), lake.partition_file("segments", "segment_summary", d1)
    )
    untouched = lake.partition_file("actionable", "events", d2)
    mtime = untouched.stat().st_mtime_ns

    assert erasure.find_erased(lake, ["u1"]) == {
        "actionable/events": 1,
        "actionable/quarantine_events": 2,
        "raw/events": 1,
    }
    assert erasure.find_erased(lake, ["u1", "u2"], only_day=d2) == {"actionable/events": 1}  # the day's files only
    removed = erasure.erase_users(lake, ["u1"])
    assert removed == {"actionable/events": 1, "actionable/quarantine_events": 2, "raw/events": 1}
    assert pq.read_table(lake.partition_file("actionable", "events", d1)).to_pydict() == {
        "event_id": ["e2", "e3"],
        "user_id": ["u2", None],
    }  # order kept, rows without a user kept
    assert [
        json.loads(p)["user_id"]
        for p in pq.read_table(lake.partition_file("actionable", "quarantine_events", d1)).column("payload").to_pylist()
    ] == ["u3"]
    assert pq.read_table(lake.partition_file("raw", "events", d1)).column("user_id").to_pylist() == ["u2"]
    assert untouched.stat().st_mtime_ns == mtime  # no mention, not rewritten
    assert pq.read_table(lake.partition_file("raw", "erasure_requests", d2)).num_rows == 1  # the legal record
    assert erasure.find_erased(lake, ["u1"]) == {} and erasure.erase_users(lake, ["u1"]) == {}
    assert erasure.erase_users(lake, ["u2"], through=d1) == {"actionable/events": 1, "raw/events": 1}
    assert pq.read_table(untouched).num_rows == 1


def test_erasure_matches_ids_in_raw_text_literally(tmp_path):
    lake = Lake(tmp_path)
    odd = "u.1+(x)'é"  # regex syntax, a quote and a non-ASCII letter
    write_parquet_atomic(
        pa.table({"user_id": [None, None, "u2"], "_raw_text": [f"x,{odd},y", "x,uz1+(x)'é,y", None]}),
        lake.partition_file("raw", "events", date(2026, 10, 1)),
    )
    assert erasure.find_erased(lake, [odd]) == {"raw/events": 1}
    assert erasure.find_erased(lake, []) == {}
    assert erasure.erase_users(lake, [odd]) == {"raw/events": 1}
    assert pq.read_table(lake.partition_file("raw", "events", date(2026, 10, 1))).column("user_id").to_pylist() == [
        None,
        "u2",
    ]


def test_erasure_reaches_the_scratch_parts_a_failed_run_left(tmp_path):
    lake = Lake(tmp_path)
    d1, d2 = date(2026, 10, 1), date(2026, 10, 2)
    write_parquet_atomic(SCHEMAS["erased_users"].empty_table(), lake.partition_file("actionable", "erased_users", d1))
    write_parquet_atomic(pa.table({"user_id": ["u1"]}), lake.partition_file("actionable", "erased_users", d2))
    left = lake.scratch / "goal_metrics" / f"ds={d1}" / "bucket=0" / "user_outcomes.parquet"
    write_parquet_atomic(pa.table({"user_id": ["u1", "u2"], "n": [1, 2]}), left)
    assert lake.scratch_files() == [left]
    assert scan_for_ids(lake, ["u1"]) == {"scratch/goal_metrics": 1}  # the check's own scan sees the part
    assert erasure.find_erased(lake, ["u1"]) == {"scratch/goal_metrics": 1}
    assert erasure.find_erased(lake, ["u1"], only_day=d2) == {}

    result = apply_erasure(lake, d2, d1)  # u1's request is new on d2: erased from every day, scratch included
    assert result.metadata["removed_from_history"].value == {"scratch/goal_metrics": 1}
    assert result.check_results[0].passed
    assert pq.read_table(left).to_pydict() == {"user_id": ["u2"], "n": [2]}


# --- the run ---------------------------------------------------------------------------------------


def test_no_pii_column_or_value_above_raw_nor_in_the_catalog(run):
    raw_profiles = _lake_rows(run.lake, "raw", "profiles")
    pii_values = sorted({r[c] for r in raw_profiles for c in PII if r[c]})
    assert len(pii_values) > 1000  # the sample has PII to protect
    con = duckdb.connect()
    con.register("pii", pa.table({"v": pii_values}))
    for path in _files_above_raw(run.lake):
        schema = pq.read_schema(path)
        assert not set(PII) & set(schema.names), path
        for field in schema:
            if not pa.types.is_string(field.type) and not pa.types.is_large_string(field.type):
                continue
            column = f'"{field.name}"'
            hits = con.sql(f"SELECT count(*) FROM read_parquet('{path}') t JOIN pii ON t.{column} = pii.v").fetchall()[
                0
            ][0]
            assert hits == 0, (path, field.name)
            if field.name == "payload":  # the quarantined raw row: no PII key, no PII value inside
                keys = con.sql(f"SELECT DISTINCT unnest(json_keys(payload)) FROM read_parquet('{path}')").fetchall()
                assert not set(PII) & {k for (k,) in keys}, path
                inside = con.sql(
                    f"SELECT count(*) FROM read_parquet('{path}') t JOIN pii ON contains(t.payload, pii.v)"
                ).fetchall()[0][0]
                assert inside == 0, path
    catalog = _catalog(run.lake)
    assert not set(PII) & {c for (c,) in catalog.sql("SELECT column_name FROM duckdb_columns()").fetchall()}
    catalog.register("pii", pa.table({"v": pii_values}))
    assert catalog.sql("SELECT count(*) FROM quarantine q JOIN pii ON contains(q.payload, pii.v)").fetchall()[0][0] == 0


def test_unconsented_users_are_never_targeted_on_any_day(run):
    profiles = run.glob("actionable", "profiles")
    tables = [
        ("segments", "segment_membership"),
        ("campaigns", "audiences"),
        *(("touchpoints", t.id) for t in run.pyramid_map.touchpoints),
    ]
    for layer, table in tables:
        if not run.lake.partitions(layer, table):
            continue
        per_day = duckdb.sql(f"""
            SELECT m.ds, count(*) FROM read_parquet('{run.glob(layer, table)}', hive_partitioning = true) AS m
            LEFT JOIN read_parquet('{profiles}', hive_partitioning = true) AS p USING (ds, user_id)
            WHERE p.consent_personalization IS NOT TRUE GROUP BY 1
        """).fetchall()
        assert per_day == [], (table, per_day)
    exported = sum(len(_lake_rows(run.lake, "touchpoints", t.id)) for t in run.pyramid_map.touchpoints)
    assert exported > 0


def test_erased_users_are_in_no_file_of_the_lake_nor_the_catalog(run):
    erased = run.erased()
    assert len(erased) >= 4
    # they had a history to erase: their rows are in the landing files (the feed's, outside the lake)
    landed = duckdb.sql(
        f"SELECT count(*) FROM read_json_auto('{run.lake.landing}/events/*/*.jsonl') "
        f"WHERE user_id IN ({', '.join(repr(u) for u in erased)})"
    ).fetchall()[0][0]
    assert landed > 0
    assert erasure.find_erased(run.lake, erased) == {}  # raw events, transactions, profiles included
    con = duckdb.connect()
    con.register("erased", pa.table({"user_id": sorted(erased)}))
    for path in sorted((run.lake.root / "lake").rglob("*.parquet")):  # independent of assets.erasure
        layer, table = path.relative_to(run.lake.root / "lake").parts[:2]
        if (layer, table) in {("raw", "erasure_requests"), ("actionable", "erased_users")}:
            continue
        names = pq.read_schema(path).names
        if "user_id" in names:
            n = con.sql(
                f"SELECT count(*) FROM read_parquet('{path}') WHERE user_id IN (SELECT user_id FROM erased)"
            ).fetchall()[0][0]
            assert n == 0, path
        for text in ("payload", "_raw_text"):
            if text in names:
                n = con.sql(
                    f"SELECT count(*) FROM read_parquet('{path}') t JOIN erased e ON contains(t.{text}, e.user_id)"
                ).fetchall()[0][0]
                assert n == 0, path
    catalog = _catalog(run.lake)
    catalog.register("erased", pa.table({"user_id": sorted(erased)}))
    views = catalog.sql(
        "SELECT DISTINCT c.table_name FROM duckdb_columns() c JOIN duckdb_views() v "
        "ON c.table_name = v.view_name WHERE NOT v.temporary AND c.column_name = 'user_id'"
    ).fetchall()
    assert len(views) >= 8
    for (view,) in views:
        assert (
            catalog.sql(f"SELECT count(*) FROM {view} WHERE user_id IN (SELECT user_id FROM erased)").fetchall()[0][0]
            == 0
        ), view
    # the request itself is kept, as the legal record
    assert {r["user_id"] for r in _lake_rows(run.lake, "actionable", "erased_users") if r["user_id"]} == erased


def test_erasure_check_runs_and_passes_every_day(run):
    for day, result in run.results.items():
        [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "erased_users_absent"]
        assert check.passed, day
    removed = [m for result in run.results.values() for m in result.asset_materializations_for_node("erasure_applied")]
    assert sum(m.metadata["rows_removed"].value for m in removed) > 0


def test_quarantine_counts_per_reason_equal_the_defect_plan(run):
    """What the actionable assets quarantined (their materialization metadata, summed over the days)
    equals the generator's answer key exactly; the lake's quarantine holds the same, less the rows of
    users erased since (each defective row has exactly one defect, hence one reason)."""
    plan = json.loads((run.lake.landing / "_truth" / "defect_plan.json").read_text())["defects"]
    for source in SOURCES_WITH_SUITES:
        expected = Counter()
        for defect in plan.get(source, {}).values():
            if defect["quarantine_reason"]:
                expected[defect["quarantine_reason"]] += defect["count"]
        quarantined = Counter()
        for result in run.results.values():
            for m in result.asset_materializations_for_node(f"actionable_{source}"):
                for key, value in m.metadata.items():
                    if key.startswith("quarantined/"):
                        quarantined[key.removeprefix("quarantined/")] += value.value
        assert quarantined == expected, source
        in_lake = Counter(
            dict(
                duckdb.sql(
                    f"SELECT reason, count(*) FROM (SELECT unnest(reasons) AS reason FROM "
                    f"read_parquet('{run.lake.glob('actionable', f'quarantine_{source}')}')) GROUP BY 1"
                ).fetchall()
            )
        )
        assert not in_lake - quarantined, source
        assert in_lake["missing_user_id"] == quarantined["missing_user_id"]  # no user: nothing to erase


def test_the_index_probe_agrees_with_duckdbs_and_has_no_false_negative(tmp_path):
    ids = [f"u{k:07d}" + "x" * (k % 41) for k in range(3000)]  # lengths across XXH64's stripes
    path = tmp_path / "part-0.parquet"
    write_parquet_atomic(pa.table({"user_id": ids[:2000]}), path)
    con = duckdb.connect()
    for user in ids[:40] + ids[2000:2400]:
        probe = con.sql(
            "SELECT bool_and(bloom_filter_excludes) FROM parquet_bloom_probe(?, 'user_id', ?)",
            params=[
                str(path),
                user,
            ],
        ).fetchall()[0][0]
        assert user_index.may_hold(path, user_index.id_hashes([user])) == (not probe), user
    assert all(user_index.may_hold(path, user_index.id_hashes([u])) for u in ids[:2000])
    assert user_index.xxh64(b"") == 0xEF46DB3751D8E999  # the reference vector


def test_erasure_reads_and_rewrites_only_the_files_that_may_mention_a_user(tmp_path):
    lake = Lake(tmp_path)
    days = [date(2026, 10, d) for d in range(1, 11)]
    for k, d in enumerate(days):
        users = [f"u{k}-{n}" for n in range(500)]
        write_parquet_atomic(pa.table({"user_id": users, "n": range(500)}), lake.partition_file("actionable", "x", d))
        write_parquet_atomic(
            pa.table({"user_id": users, "_raw_text": pa.nulls(500, pa.string())}), lake.partition_file("raw", "x", d)
        )
    files = sorted((lake.root / "lake").rglob("*.parquet"))
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    hashes = user_index.id_hashes(["u3-7"])
    read = [f for group in erasure._files_to_read(files, hashes).values() for f in group]
    assert len(read) <= 3 and lake.partition_file("actionable", "x", days[3]) in read  # 1% false positives
    assert erasure.erase_users(lake, ["u3-7"]) == {"actionable/x": 1, "raw/x": 1}
    rewritten = [f for f in files if f.stat().st_mtime_ns != mtimes[f]]
    assert rewritten == [lake.partition_file("actionable", "x", days[3]), lake.partition_file("raw", "x", days[3])]
    assert erasure.find_erased(lake, ["u3-7"]) == {}


def test_a_day_without_erased_users_reads_no_lake_file(tmp_path):
    lake = Lake(tmp_path)
    d1, d2 = date(2026, 10, 1), date(2026, 10, 2)
    for d in (d1, d2):
        write_parquet_atomic(
            SCHEMAS["erased_users"].empty_table(), lake.partition_file("actionable", "erased_users", d)
        )
        for layer, table in (("raw", "events"), ("actionable", "events"), ("segments", "segment_summary")):
            path = lake.partition_file(layer, table, d)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"not parquet: reading it fails")
    result = apply_erasure(lake, d2, d1)
    assert result.metadata["rows_removed"] == 0 and result.metadata["erased_users"] == 0
    assert result.check_results[0].passed and result.check_results[0].metadata["files_scanned"].value == 0
