"""Exports that sync: the delta, its application, the manifest, CSV on request; over the small run."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets import exports
from assets.pyramid_map import Touchpoint
from assets.touchpoints import EXPORT_SCHEMA

D1, D2 = date(2026, 10, 1), date(2026, 10, 2)


def _snapshot(day: date, rows: list[tuple[str, str, int]]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"as_of": day, "touchpoint_id": "tp", "channel": "email", "user_id": u, "campaign_id": c, "priority": p}
            for u, c, p in rows
        ],
        schema=EXPORT_SCHEMA,
    )


def test_delta_by_hand():
    before = _snapshot(D1, [("u1", "a", 1), ("u2", "a", 1), ("u3", "b", 2)])
    after = _snapshot(D2, [("u2", "a", 1), ("u3", "a", 1), ("u4", "b", 2)])
    delta = exports.export_delta(before, after, D2)
    got = [(r["user_id"], r["change"], r["campaign_id"], r["as_of"]) for r in delta.to_pylist()]
    assert got == [("u1", "exited", "a", D1), ("u3", "changed", "a", D2), ("u4", "entered", "b", D2)]
    assert exports.apply_delta(before, delta, D2).equals(after)


def test_first_day_everything_entered():
    first = _snapshot(D1, [("u1", "a", 1)])
    delta = exports.export_delta(None, first, D1)
    assert delta.column("change").to_pylist() == ["entered"]
    assert exports.apply_delta(None, delta, D1).equals(first)


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="touchpoints\\[tp\\].format must be one of parquet, csv"):
        exports.check_format("tp", "xlsx")


def test_deltas_rebuild_every_snapshot_of_the_run(run):
    """Applying each day's stored delta to the previous day's stored snapshot gives the stored snapshot."""
    lake, changes = run.lake, set()
    for tp in run.pyramid_map.touchpoints:
        previous = None
        for day in run.days:
            snapshot = pq.read_table(lake.partition_file("touchpoints", tp.id, day)).cast(EXPORT_SCHEMA)
            delta = pq.read_table(lake.partition_file("touchpoints", f"{tp.id}_delta", day))
            assert exports.apply_delta(previous, delta, day).equals(snapshot.sort_by("user_id")), (tp.id, day)
            changes |= set(delta.column("change").to_pylist())
            previous = snapshot
    assert {"entered", "exited"} <= changes  # the deltas carried real adds and removes, not only empty days


def test_manifest_counts_checksums_and_map_version(run):
    lake, day = run.lake, run.days[-1]
    version = exports.map_version(run.pyramid_map.path)
    for tp in run.pyramid_map.touchpoints:
        folder = lake.partition_file("touchpoints", tp.id, day).parent
        manifest = json.loads((folder / "manifest.json").read_text())
        snapshot = pq.read_table(folder / "part-0.parquet")
        delta = pq.read_table(lake.partition_file("touchpoints", f"{tp.id}_delta", day)).to_pylist()
        assert manifest["map_version"] == version and manifest["as_of"] == day.isoformat()
        assert manifest["counts"] == {
            "rows": snapshot.num_rows,
            **{c: sum(r["change"] == c for r in delta) for c in exports.CHANGES},
        }
        assert sum(manifest["campaigns"].values()) == snapshot.num_rows
        assert [f["name"] for f in manifest["schema"]["snapshot"]] == EXPORT_SCHEMA.names
        for entry in manifest["files"].values():
            assert hashlib.sha256((lake.root / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
        assert "u0" not in json.dumps(manifest)  # aggregates only


def test_csv_on_request(tmp_path):
    """A `format: csv` touchpoint gets CSV copies of its snapshot and delta, listed in the manifest."""
    from assets.lake import Lake, write_parquet_atomic
    from pipelines.layers.exports import sync_export

    lake, tp = Lake(tmp_path), Touchpoint("tp", "email", 24.0, format="csv")
    write_parquet_atomic(_snapshot(D1, [("u1", "a", 1), ("u2", "b", 2)]), lake.partition_file("touchpoints", "tp", D1))
    sync_export(lake, tp, D1, D1, "v1")
    folder = lake.partition_file("touchpoints", "tp", D1).parent
    assert (folder / "snapshot.csv").read_text().splitlines() == [
        "as_of,touchpoint_id,channel,user_id,campaign_id,priority",
        "2026-10-01,tp,email,u1,a,1",
        "2026-10-01,tp,email,u2,b,2",
    ]
    assert (folder / "delta.csv").read_text().splitlines()[1] == "2026-10-01,tp,email,u1,a,1,entered"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"snapshot", "delta", "snapshot_csv", "delta_csv"}
    assert manifest["counts"] == {"rows": 2, "entered": 2, "exited": 0, "changed": 0}


def test_erasure_removes_users_from_csv_copies(tmp_path):
    """A touchpoint exported as CSV: erasing a user rewrites the CSV copies beside the Parquet export."""
    from datetime import date

    import pyarrow as pa

    from assets.erasure import erase_users
    from assets.exports import csv_text
    from assets.lake import Lake, write_parquet_atomic

    lake = Lake(tmp_path)
    ds = date(2026, 10, 2)
    table = pa.table({"user_id": ["u1", "u2", "u3"], "campaign_id": ["c", "c", "c"]})
    path = lake.partition_file("touchpoints", "weekly_email", ds)
    write_parquet_atomic(table, path)
    (path.parent / "snapshot.csv").write_text(csv_text(table))
    removed = erase_users(lake, ["u2"])
    assert removed == {"touchpoints/weekly_email": 1}
    assert (path.parent / "snapshot.csv").read_text() == "user_id,campaign_id\nu1,c\nu3,c\n"
    assert (path.parent / "snapshot.csv").read_text() == csv_text(table.filter(pa.array([True, False, True])))


def test_the_delta_check_rebuilds_from_disk_and_fails_on_a_lost_change(run, tmp_path):
    """`delta_rebuilds_snapshot` re-reads the stored files: it passes on the run's, and fails once a change
    is lost from a stored delta (what a sync tool applying it would get wrong)."""
    import shutil

    import pyarrow.compute as pc

    from assets.lake import Lake
    from pipelines.layers.exports import delta_check, delta_table

    tp, day = run.pyramid_map.touchpoints[0], run.days[2]
    copy = Lake(tmp_path)
    for table, ds in ((tp.id, run.days[1]), (tp.id, day), (delta_table(tp.id), day)):
        target = copy.partition_file("touchpoints", table, ds)
        target.parent.mkdir(parents=True)
        shutil.copy(run.lake.partition_file("touchpoints", table, ds), target)
    key = f"touchpoint_{tp.id}_delta"
    assert delta_check(copy, tp, day, run.pyramid_map.start_date, key).passed
    delta_path = copy.partition_file("touchpoints", delta_table(tp.id), day)
    delta = pq.read_table(delta_path)
    entered = pc.equal(delta.column("change"), "entered")
    assert pc.any(entered).as_py()
    pq.write_table(delta.filter(pc.invert(entered)), delta_path)  # the day's adds are lost
    result = delta_check(copy, tp, day, run.pyramid_map.start_date, key)
    assert not result.passed and result.metadata["rebuilt_rows"].value < result.metadata["snapshot_rows"].value
