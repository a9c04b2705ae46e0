"""The one resource every asset uses: where the data root and the map are."""

from __future__ import annotations

from functools import lru_cache

import dagster as dg

from assets.lake import Lake, as_data_root, default_data_root
from assets.pyramid_map import PyramidMap, default_map_path, load_map


class PyramidResource(dg.ConfigurableResource):
    """Data root (landing, lake, reports, catalog) and the map. Empty means the defaults:
    `$PYRAMID_DATA_ROOT` or `./data`, and `$PYRAMID_MAP` or `./pyramid.yaml` (the current folder).
    `build_definitions` always sets `map_path` to the map its graph is built from."""

    data_root: str = ""
    map_path: str = ""

    def lake(self) -> Lake:
        return Lake(as_data_root(self.data_root) if self.data_root else default_data_root())

    def pyramid_map(self) -> PyramidMap:
        return _cached_map(self.map_path or str(default_map_path()))


@lru_cache(maxsize=4)
def _cached_map(path: str) -> PyramidMap:
    return load_map(path)
