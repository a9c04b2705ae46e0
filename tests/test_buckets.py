"""User buckets (assets/buckets.py, docs/scaling.md): a stable, balanced bucket of the user id, and figures that do
not depend on the bucket count: the pipeline run with 1 bucket and with 4 writes the same tables."""

import math
import shutil
from collections import Counter
from datetime import date

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets import north_star
from assets.buckets import BUCKETS_ENV, bucket_count, bucket_of, split, user_buckets
from assets.goals import arm_statistics, merge_arm_statistics
from assets.lake import Lake
from pipelines.definitions import NIGHTLY_JOB, build_definitions
from pipelines.layers.goal_buckets import remove_folder, scratch_dir
from pipelines.resources import PyramidResource
from pipelines.runner import QUIET

# (layer, asset): the steps whose per-user work runs bucket by bucket (the North Star's table is goals/north_star)
BUCKETED = [
    ("goals", "goal_cohort"),
    ("goals", "goal_user_outcomes"),
    ("goals", "goal_metrics"),
    ("goals", "north_star_series"),
    ("goals", "north_star_contributions"),
]
COMPARED = [(layer, "north_star" if key == "north_star_series" else key) for layer, key in BUCKETED]


def test_bucket_of_a_user_is_fixed():
    # md5('bucket:u000042') starts 03a9fe7ecfb47: pinned, since changing the function would move users between
    # the buckets of a running deployment
    assert [bucket_of("u000042", n) for n in (1, 2, 4, 7, 16)] == [0, 1, 3, 3, 7]


def test_bucket_of_agrees_with_sql_and_is_balanced():
    ids = [f"user-{i}" for i in range(20_000)]
    in_sql = user_buckets(pa.array(ids), 8).to_pylist()
    assert in_sql == [bucket_of(u, 8) for u in ids]
    sizes = Counter(in_sql)
    assert sorted(sizes) == list(range(8))
    assert all(abs(size - 2_500) < 4 * math.sqrt(2_500) for size in sizes.values())


def test_split_keeps_every_row_once_in_order():
    table = pa.table({"user_id": [f"u{i}" for i in range(100)], "v": list(range(100))})
    parts = split(table, 4)
    assert sum(p.num_rows for p in parts) == 100
    assert sorted(v for p in parts for v in p.column("v").to_pylist()) == list(range(100))
    assert all(p.column("v").to_pylist() == sorted(p.column("v").to_pylist()) for p in parts)
    assert split(table, 1) == [table] and split(None, 3) == [None, None, None]


def test_bucket_count_setting(monkeypatch):
    monkeypatch.delenv(BUCKETS_ENV, raising=False)
    assert bucket_count() == 1
    monkeypatch.setenv(BUCKETS_ENV, " 4 ")
    assert bucket_count() == 4
    assert bucket_count(2) == 2
    for bad in ("0", "-1", "two", "1.5"):
        monkeypatch.setenv(BUCKETS_ENV, bad)
        with pytest.raises(ValueError, match=BUCKETS_ENV):
            bucket_count()


@pytest.mark.parametrize("empty_bucket", [False, True])
def test_pooled_arm_statistics_do_not_depend_on_buckets(empty_bucket):
    rng = np.random.default_rng(3)
    n = 3_000
    per_user = pl.DataFrame(
        {
            "goal_id": ["g"] * n,
            "metric": rng.choice(["m", "k"], n),
            "campaign_id": ["c"] * n,
            "arm": rng.choice(["treatment", "holdout"], n),
            "user_id": [f"u{i}" for i in range(n)],
            "x": rng.integers(0, 5, n).astype(float),
            "n": rng.integers(1, 9, n).astype(float),
            "days": rng.integers(1, 9, n),
            "covariate": rng.random(n) * 3,
            "exposed": rng.random(n) < 0.3,
        }
    )
    if empty_bucket:  # a ratio metric's users of one bucket with no denominator: that bucket's own rate is 0 / 0
        first = pl.Series([bucket_of(u, 4) == 0 for u in per_user["user_id"]])
        per_user = per_user.with_columns(n=pl.when(first).then(0.0).otherwise(pl.col("n")))
    one = merge_arm_statistics(arm_statistics(per_user, 1))
    # the residual sums against a direct computation about the pooled rates
    treated = per_user.filter((pl.col("metric") == "m") & (pl.col("arm") == "treatment"))
    rate = treated["x"].sum() / treated["n"].sum()
    direct = float(((treated["x"] - rate * treated["n"]) ** 2).sum())
    row = one.filter((pl.col("metric") == "m") & (pl.col("arm") == "treatment"))
    assert row["sq_residuals"][0] == pytest.approx(direct, rel=1e-12)
    for buckets in (4, 7):
        assert_frames_close(one, merge_arm_statistics(arm_statistics(per_user, buckets)))


@pytest.fixture(scope="module")
def runs(run, tmp_path_factory):
    """The goal and North Star steps of the shared run's last day (tests/pyramid_run.py) run again through Dagster
    on two copies of its lake: with 1 bucket and with 4 (the steps upstream are not bucketed)."""
    day = run.days[-1].isoformat()
    selection = [dg.AssetKey(key) for _layer, key in BUCKETED]
    lakes, counts = {}, []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(north_star, "split", lambda table, buckets: counts.append(buckets) or split(table, buckets))
        for buckets in (1, 4):
            patch.setenv(BUCKETS_ENV, str(buckets))
            lake = Lake(tmp_path_factory.mktemp(f"buckets_{buckets}"))
            shutil.copytree(run.lake.root / "lake", lake.root / "lake")
            job = build_definitions(run.pyramid_map, PyramidResource(data_root=str(lake.root))).resolve_job_def(
                NIGHTLY_JOB
            )
            instance = dg.DagsterInstance.ephemeral()
            result = job.execute_in_process(
                partition_key=day, instance=instance, run_config=QUIET, asset_selection=selection
            )
            assert result.success
            lakes[buckets] = lake
    assert set(counts) == {1, 4}  # the North Star step did split by the setting
    return lakes


@pytest.mark.parametrize(("layer", "table"), COMPARED)
def test_tables_do_not_depend_on_buckets(runs, layer, table):
    assert_same_tables(runs[1], runs[4], layer, table)


def assert_same_tables(one: Lake, other: Lake, layer: str, table: str) -> None:
    """Both lakes have the same partitions of the table, with the same schemas and rows (floats to 1e-12)."""
    days = one.partitions(layer, table)
    assert days and days == other.partitions(layer, table)
    for day in days:
        expected = pq.read_table(one.partition_file(layer, table, day))
        got = pq.read_table(other.partition_file(layer, table, day))
        assert got.schema.remove_metadata() == expected.schema.remove_metadata()
        assert_frames_close(pl.from_arrow(expected), pl.from_arrow(got))


def assert_frames_close(expected: pl.DataFrame, got: pl.DataFrame) -> None:
    """Same columns and rows; integers, strings, dates exactly equal, floats to 1e-12 relative (NaN = NaN)."""
    assert expected.columns == got.columns and expected.height == got.height
    for name in expected.columns:
        a, b = expected.get_column(name), got.get_column(name)
        assert a.is_null().to_list() == b.is_null().to_list(), name
        if a.dtype.is_float():
            x, y = a.drop_nulls().to_numpy(), b.drop_nulls().to_numpy()
            assert np.allclose(x, y, rtol=1e-12, atol=1e-15, equal_nan=True), name
        else:
            assert a.to_list() == b.to_list(), name


def test_removing_a_buckets_scratch_parts_keeps_the_others_and_no_empty_folder(tmp_path):
    lake = Lake(tmp_path)
    day = date(2026, 10, 1)
    folders = [scratch_dir(lake, day) / f"bucket={b}" for b in range(2)]
    for folder in folders:
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"user_id": ["u1"]}), folder / "user_outcomes.parquet")
    remove_folder(lake, folders[0])
    assert lake.scratch_files() == [folders[1] / "user_outcomes.parquet"]
    remove_folder(lake, folders[1])
    assert lake.scratch_files() == [] and not lake.scratch.exists()
