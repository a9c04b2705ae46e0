"""Column lineage: what Dagster shows on user_daily and user_features agrees with the lineage that decides
what a withheld column blocks, and docs/contracts.md lists exactly the feature columns the code builds."""

import re
from pathlib import Path

from assets import contract
from assets.features import feature_column_names
from assets.lineage import column_lineage, daily_column_lineage, feature_column_lineage
from assets.measures import daily_columns
from assets.pyramid_map import load_map

SAMPLE = load_map()
WINDOWS = [7, 30, 90]
DAILY_COLUMNS = daily_columns(SAMPLE.measures)
ROOT = Path(__file__).resolve().parents[1]


def test_the_dagster_lineage_composes_to_the_blocking_lineage():
    """Feature <- user_daily <- actionable source columns, composed, names the same source columns as
    `column_lineage` (which decides blocking) does for every feature."""
    daily, features = daily_column_lineage(SAMPLE), feature_column_lineage(SAMPLE)
    composed: dict[str, set[tuple[str, str]]] = {}
    for column, inputs in features.items():
        for asset, name in inputs:
            via = daily[name] if asset == "user_daily" else [(asset, name)]
            composed.setdefault(column, set()).update((a.removeprefix("actionable_"), c) for a, c in via)
    blocking: dict[str, set[tuple[str, str]]] = {}
    for source_column, fed in column_lineage(SAMPLE).items():
        for column in fed & set(feature_column_names(SAMPLE, WINDOWS)):
            blocking.setdefault(column, set()).add(source_column)
    assert composed == blocking


def test_every_lineage_input_is_a_real_column():
    schemas = {f"actionable_{name}": set(schema.names) for name, schema in contract.SCHEMAS.items()}
    schemas["user_daily"] = set(DAILY_COLUMNS)
    pairs = [
        p
        for inputs in [*daily_column_lineage(SAMPLE).values(), *feature_column_lineage(SAMPLE).values()]
        for p in inputs
    ]
    assert pairs and all(name in schemas[asset] for asset, name in pairs)
    flags = {"user_id", "as_of", "history_days", *(f"complete_{w}d" for w in WINDOWS)}
    assert set(feature_column_lineage(SAMPLE)) == set(feature_column_names(SAMPLE, WINDOWS)) - flags


def documented_feature_columns() -> set[str]:
    """The user_features columns docs/contracts.md names, each `_Wd` expanded over WINDOWS."""
    text = (ROOT / "docs" / "contracts.md").read_text()
    paragraph = text.split("`user_features` columns:", 1)[1].split("Window `W` ending at ds", 1)[0]
    names = set()
    for name in re.findall(r"`([a-z][a-zA-Z_0-9]+)`", paragraph):
        names |= {name.replace("_Wd", f"_{w}d") for w in WINDOWS} if name.endswith("_Wd") else {name}
    return names


def test_contracts_md_lists_exactly_the_feature_columns():
    built = {c for c in feature_column_names(SAMPLE, WINDOWS) if not c.startswith("complete_") and "_history" not in c}
    documented = documented_feature_columns() - {"unknown"}  # an age band value, not a column
    assert documented - {"history_days"} == built - {"history_days"}
