"""Steps read only the columns they need. The segment steps, the user_features columns of the map's segments
(`segments.feature_columns`): on the sample map's features, membership and scored membership come out the same as
from the whole table. A goal bucket, the user_daily columns of the map's metrics (`goal_buckets.metric_columns`):
every metric sums the same columns."""

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets.buckets import Bucket
from assets.features import features_schema, monotone_windowed
from assets.measures import daily_schema
from assets.metrics import _summed
from assets.pyramid_map import load_map
from assets.segments import ELIGIBILITY_COLUMNS, feature_columns, raw_scored_membership, segment_membership
from pipelines.layers.goal_buckets import bucket_rows, metric_columns

AS_OF = date(2026, 10, 20)


def _random_column(field: pa.Field, n: int, rng: np.random.Generator) -> pa.Array:
    """Small value sets, so that rules select some users and not others; a tenth NULL."""
    kind, nulls = field.type, rng.random(n) < 0.1
    if pa.types.is_string(kind):
        values = rng.choice(["basic", "premium", "free", "US", "DE", "18-24", "unknown"], n).tolist()
    elif pa.types.is_boolean(kind):
        values = (rng.random(n) < 0.7).tolist()
    elif pa.types.is_integer(kind):
        values = rng.integers(0, 12, n).tolist()
    elif pa.types.is_floating(kind):
        values = rng.uniform(0, 500, n).round(2).tolist()
    elif pa.types.is_date(kind):
        values = [AS_OF] * n
    else:  # timestamps
        values = [datetime(2026, 10, 20, tzinfo=UTC) - timedelta(days=int(d)) for d in rng.integers(0, 90, n)]
    return pa.array([None if null else v for v, null in zip(values, nulls, strict=True)], kind)


def _sample_features(n: int = 2000) -> pa.Table:
    pmap, rng = load_map(), np.random.default_rng(11)
    schema = features_schema(pmap, list(pmap.segments.windows))
    columns = {f.name: _random_column(f, n, rng) for f in schema}
    columns["user_id"] = pa.array([f"u{k:05d}" for k in range(n)])
    columns["as_of"] = pa.array([AS_OF] * n, pa.date32())
    return pa.table(columns, schema=schema)


def test_the_projected_features_give_the_same_segments():
    pmap, whole = load_map(), _sample_features()
    wanted = feature_columns(pmap.segments.definitions)
    projected = whole.select([c for c in whole.column_names if c in wanted])
    assert projected.num_columns < whole.num_columns / 2
    definitions, monotone = pmap.segments.definitions, monotone_windowed(pmap)
    expected = segment_membership(whole, definitions, AS_OF, monotone=monotone)
    assert expected.num_rows > 0
    assert segment_membership(projected, definitions, AS_OF, monotone=monotone).equals(expected)
    assert raw_scored_membership(projected, definitions, AS_OF).equals(raw_scored_membership(whole, definitions, AS_OF))
    assert set(ELIGIBILITY_COLUMNS) <= wanted


def test_a_bucket_reads_the_activity_columns_every_metric_sums(tmp_path):
    pmap = load_map()
    daily = daily_schema(pmap.measures).empty_table()
    pq.write_table(daily, tmp_path / "user_daily.parquet")
    files = [str(tmp_path / "user_daily.parquet")]
    whole = bucket_rows(files, Bucket(0, 1))
    projected = bucket_rows(files, Bucket(0, 1), metric_columns(pmap.metrics.values()))
    assert projected.column_names == [c for c in whole.column_names if c in projected.column_names]
    assert {"user_id", "activity_date"} <= set(projected.column_names) and projected.num_columns < whole.num_columns
    for metric in pmap.metrics.values():
        assert _summed(metric, projected.column_names) == _summed(metric, whole.column_names), metric.id
