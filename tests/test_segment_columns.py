"""The segment steps read only the user_features columns the map's segments need (`segments.feature_columns`): on
the sample map's features, membership, scored membership and baselines' eligibility come out the same as from
the whole table."""

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa

from assets.features import features_schema, monotone_windowed
from assets.pyramid_map import load_map
from assets.segments import ELIGIBILITY_COLUMNS, feature_columns, raw_scored_membership, segment_membership

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
