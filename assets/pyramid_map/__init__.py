"""The program's map, `pyramid.yaml`: loaded, typed and checked before anything runs.

"Start with constraints": every reference must resolve, every segment rule may use only feature
columns, every goal metric only promoted daily aggregates. An error names the file, the line and the
key path, and says what is allowed.

`models.py`, `segments.py` and `measures.py` (the declared measures and features) hold the typed sections
(frozen pydantic dataclasses), `references.py` the checks across sections, `errors.py` the translation of
pydantic's error locations to file lines and key paths. The models are imported here too: they are this
package's public API (`from assets.pyramid_map import Campaign`), not a compatibility facade.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import TypeAdapter, ValidationError

from assets.pyramid_map.errors import MapError, key_lines, located_problems
from assets.pyramid_map.measures import Features, Latest, Measure, Windowed
from assets.pyramid_map.models import (
    Actionable,
    Campaign,
    Consent,
    ConsentDefault,
    Context,
    FrequencyCap,
    Goal,
    Metric,
    NorthStar,
    OptOut,
    PyramidMap,
    Touchpoint,
)
from assets.pyramid_map.segments import (
    LIFECYCLE_STAGES,
    RFM_GROUPS,
    SEGMENT_KINDS,
    SEGMENT_METHODS,
    LifecycleScoring,
    RfmScoring,
    SegmentDefinition,
    Segments,
    Stability,
)
from assets.pyramid_map.sources import (
    ACTIVITY_SOURCES,
    NOT_DECLARED,
    NOT_DECLARED_NOTE,
    SOURCE_FORMATS,
    SOURCE_NAMES,
    CsvDialect,
    Source,
    Volume,
)

__all__ = [
    "ACTIVITY_SOURCES",
    "DEFAULT_MAP_PATH",
    "LIFECYCLE_STAGES",
    "RFM_GROUPS",
    "SEGMENT_KINDS",
    "NOT_DECLARED",
    "NOT_DECLARED_NOTE",
    "SEGMENT_METHODS",
    "SOURCE_FORMATS",
    "SOURCE_NAMES",
    "Actionable",
    "Campaign",
    "Context",
    "CsvDialect",
    "Features",
    "Consent",
    "ConsentDefault",
    "FrequencyCap",
    "Goal",
    "Latest",
    "LifecycleScoring",
    "MapError",
    "Measure",
    "Metric",
    "NorthStar",
    "OptOut",
    "PyramidMap",
    "RfmScoring",
    "SegmentDefinition",
    "Segments",
    "Source",
    "Stability",
    "Touchpoint",
    "Volume",
    "Windowed",
    "default_map_path",
    "load_map",
]

# the sample program's map: pyramid.yaml at the top of the checkout; in an installed package, the copy its
# symlink in pipelines/sample carried in
DEFAULT_MAP_PATH = (Path(__file__).parents[2] / "pipelines" / "sample" / "pyramid.yaml").resolve()
_MAP = TypeAdapter(PyramidMap)


def default_map_path() -> Path:
    """`$PYRAMID_MAP`, or pyramid.yaml in the folder the command runs in."""
    return Path(os.environ.get("PYRAMID_MAP", Path.cwd() / "pyramid.yaml"))


def load_map(path: Path | str = DEFAULT_MAP_PATH) -> PyramidMap:
    """Load and check the map; raise MapError listing every problem found."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError as err:
        raise MapError(
            [
                f"{path}: no such file; run from the folder holding your pyramid.yaml, or pass --map FILE "
                f"(or set PYRAMID_MAP); the sample program's map is {DEFAULT_MAP_PATH}"
            ]
        ) from err
    except OSError as err:
        raise MapError([f"{path}: cannot be read ({err.strerror})"]) from err
    try:
        lines = key_lines(yaml.compose(text))
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise MapError([f"{path}: not valid YAML: {err}"]) from err
    if not isinstance(raw, dict):
        raise MapError([f"{path}:1: the map must be a mapping of sections"])
    try:
        return _MAP.validate_python({**raw, "path": path})
    except ValidationError as err:
        raise MapError(located_problems(err, path, lines)) from None
