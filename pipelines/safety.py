"""Ask before deleting data; recognise a data root that holds only a generated sample.

A command that deletes or overwrites landing files, the lake or reports lists what it will remove and
asks. With `--yes` it does not ask; when standard input is not a terminal it refuses without `--yes`.

The generated sample leaves a marker, `<data root>/.pyramid-demo`: the size of every landing file it
wrote. `pyramid demo` replaces the data root without asking only when every landing file is one the
marker lists, unchanged, and no lake file is older than the marker (a lake built before the sample was
written was built from something else).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from assets.lake import Lake

MARKER = ".pyramid-demo"
YES_FLAG = "--yes"


def landing_folders(lake: Lake, sources: list[str]) -> list[Path]:
    """What the generator replaces: each source's landing folder and the answer keys."""
    return [lake.landing / name for name in (*sources, "_truth")]


def write_marker(lake: Lake) -> Path:
    """Record the landing files a freshly generated sample consists of."""
    files = {path.relative_to(lake.root).as_posix(): path.stat().st_size for path in _files(lake.landing)}
    marker = lake.root / MARKER
    marker.write_text(json.dumps({"written_by": "the sample generator", "landing_files": files}, indent=1) + "\n")
    return marker


def holds_only_a_sample(lake: Lake) -> bool:
    """True when the landing files are the generated sample's, unchanged, and the lake was built after it."""
    marker = lake.root / MARKER
    if not marker.exists():
        return not any(_files(lake.landing)) and not any(_files(lake.root / "lake"))
    try:
        listed = json.loads(marker.read_text())["landing_files"]
    except (ValueError, KeyError, TypeError):
        return False
    found = {path.relative_to(lake.root).as_posix(): path.stat().st_size for path in _files(lake.landing)}
    written = marker.stat().st_mtime
    return found == listed and all(path.stat().st_mtime >= written for path in _files(lake.root / "lake"))


def confirm_removal(console: Console, folders: list[Path], yes: bool, ask: Callable[[str], str] = input) -> bool:
    """True to go ahead: nothing to remove, --yes, or the operator said yes. Says what goes, and why not."""
    present = [(folder, sum(1 for _ in _files(folder))) for folder in folders]
    present = [(folder, count) for folder, count in present if count]
    if not present or yes:
        return True
    listing = "\n".join(f"  {folder}  ({count:,} file{'s' if count > 1 else ''})" for folder, count in present)
    console.print(f"this removes:\n{listing}", soft_wrap=True, highlight=False, markup=False)
    if not sys.stdin.isatty():
        console.print(
            f"refused: standard input is not a terminal, so nobody can confirm; "
            f"run again with {YES_FLAG} to remove them",
            soft_wrap=True,
            highlight=False,
            markup=False,
        )
        return False
    return ask("remove them? [y/N] ").strip().lower() in ("y", "yes")


def _files(folder: Path):
    """Every file under a folder (none when it does not exist), without following links."""
    for parent, _, names in os.walk(folder):
        for name in names:
            yield Path(parent) / name
