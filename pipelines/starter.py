"""`pyramid init DIR`: a starter program folder, the sample's commented map and its landing layout."""

from __future__ import annotations

import re
from pathlib import Path

from assets.lake import write_text_atomic
from assets.pyramid_map import load_map

HEADER = """\
# A starter map, copied from the sample program (a savings app). Edit it to describe your own data:
# `sources` say where each feed lands, the segments, campaigns and goals what you do with it.
# `pyramid check` checks it; `pyramid run` runs every landed day. docs/contracts.md has the columns.

"""


class StarterExists(Exception):
    """The folder already holds a map: init never overwrites one."""


def landing_folder(path_template: str) -> str:
    """The fixed folder of a source's path template: `landing/events/{ds}/*.jsonl` -> `landing/events`."""
    fixed = re.split(r"[{*?\[]", path_template, maxsplit=1)[0]
    return fixed.rsplit("/", 1)[0]


def write_starter(directory: Path, sample_map: Path) -> dict[str, str]:
    """Write DIR/pyramid.yaml and DIR/data/<landing folder> per source; each source's expected files."""
    target = directory / "pyramid.yaml"
    if target.exists():
        raise StarterExists(f"{target} already exists; init never overwrites a map")
    pyramid_map = load_map(sample_map)
    layout = {}
    for name, source in pyramid_map.sources.items():
        (directory / "data" / landing_folder(source.path)).mkdir(parents=True, exist_ok=True)
        layout[name] = f"data/{source.path.replace('{ds}', 'YYYY-MM-DD')}"
    write_text_atomic(HEADER + sample_map.read_text(), target)
    return layout
