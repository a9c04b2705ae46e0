"""The landing folder: which files of a source landed for a day, the required feeds, and the manifest of
each raw partition (assets/raw.py reads the files).

A path with `{ds}` selects the day's files by filling it in; one without takes each file's day from the
date in its name (`file_day`). Before a day is landed, `require_feeds` stops it when a source the map
declares `required` has no file for the day (`MissingFeedError`, naming the sources and the day).
Beside each raw partition a manifest (`_landing_manifest.json`) records the landing files it was made
from, with their sizes and modification times, so that a file landing later for that day is noticed
(assets/feeds.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from assets.lake import Lake, glob_files, is_local, write_text_atomic
from assets.pyramid_map import Source

MANIFEST_NAME = "_landing_manifest.json"
DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})[-_]?(\d{2})[-_]?(\d{2})(?!\d)")


class LandingError(RuntimeError):
    """A landing file that cannot be landed; the message names the file and what was expected."""


class MissingFeedError(LandingError):
    """A source that must land every day has no file for the day; nothing is written for that day."""


def landing_files(lake: Lake, source: Source, ds: date) -> list[Path]:
    """The day's landing files of a source, in name order: those its path matches with `{ds}` filled in,
    or for a path without `{ds}` those whose name holds the day (`file_day`)."""
    if "{ds}" in source.path:
        return glob_files(lake.root, source.path.format(ds=ds.isoformat()))
    files = glob_files(lake.root, source.path)
    undated = [p for p in files if file_day(p) is None]
    if undated:
        shown = ", ".join(str(p) for p in undated[:3]) + (", ..." if len(undated) > 3 else "")
        raise LandingError(
            f"{shown}: no day in the file name; source {source.name!r} has a path without {{ds}} "
            f"({source.path}), so each file's landing day is the first date in its name (YYYY-MM-DD, "
            "YYYY_MM_DD or YYYYMMDD). Rename the file, or split a history export by day with `pyramid import`"
        )
    return [p for p in files if file_day(p) == ds]


def landed_days(lake: Lake, source: Source) -> set[date]:
    """The days some landing file of the source is for: the dates of the folders (or names) its `{ds}` part
    matches, or for a path without `{ds}` the dates in the matching files' names."""
    if "{ds}" not in source.path:
        return {d for p in glob_files(lake.root, source.path) if (d := file_day(p)) is not None}
    head = source.path.split("{ds}")[0]
    prefix = head.rsplit("/", 1)[-1]  # the part of a file name before {ds}, if {ds} is in the name
    days = set()
    for path in glob_files(lake.root, head + "*"):  # not `root / head`: it drops a trailing "/"
        text = path.name.removeprefix(prefix)[:10]
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            try:
                days.add(date.fromisoformat(text))
            except ValueError:
                continue
    return days


def file_day(path: Path) -> date | None:
    """The first date written YYYY-MM-DD, YYYY_MM_DD or YYYYMMDD in the file's name, if any."""
    for year, month, day in DATE_IN_NAME.findall(path.name):
        try:
            return date(int(year), int(month), int(day))
        except ValueError:
            continue
    return None


def require_feeds(lake: Lake, sources: Iterable[Source], ds: date) -> None:
    """Raise MissingFeedError when a required source has no landing file for `ds`."""
    missing = [s for s in sources if s.required and not landing_files(lake, s, ds)]
    if missing:
        expected = "; ".join(
            f"{s.name} (expected {s.path.format(ds=ds.isoformat())} under {lake.root})" for s in missing
        )
        raise MissingFeedError(
            f"landing day {ds} is incomplete: no file for required source {expected}. Nothing was written for "
            f"{ds}. Land the file, then re-run the day and the days after it (`pyramid run --start {ds}`); "
            "or declare the source `required: false` in the map if it may skip a day."
        )


def landing_manifest(lake: Lake, files: Iterable[Path]) -> list[dict]:
    """Each landing file (path relative to the data root) with its size and modification time."""
    manifest = []
    for path in files:
        stat = path.stat()
        manifest.append({"file": relative_path(path, lake), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    return sorted(manifest, key=lambda entry: entry["file"])


def manifest_path(lake: Lake, source_name: str, ds: date) -> Path:
    return lake.partition_file("raw", source_name, ds).with_name(MANIFEST_NAME)


def write_manifest(lake: Lake, source_name: str, ds: date, manifest: list[dict]) -> Path:
    """Record, beside the raw partition, the landing files it was made from (atomically)."""
    path = manifest_path(lake, source_name, ds)
    return write_text_atomic(json.dumps({"files": manifest}, indent=1, sort_keys=True) + "\n", path)


def read_manifest(lake: Lake, source_name: str, ds: date) -> list[dict] | None:
    """The recorded landing files of a raw partition; None when it has no manifest."""
    path = manifest_path(lake, source_name, ds)
    if not path.exists():
        return None
    return json.loads(path.read_text())["files"]


def relative_path(path: Path, lake: Lake) -> str:
    """`path` relative to the data root (as given when it is outside it), with forward slashes."""
    if is_local(path) != is_local(lake.root):  # a local copy of an object-store file, or the other way round
        return path.as_posix()
    try:
        return path.resolve().relative_to(lake.root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
