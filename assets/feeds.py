"""Complete feeds: each source's daily volume against its trailing median, and landing files that
arrived (or changed) for a day already processed, with the days to re-run.

Both read only what is cheap: row counts from the raw partitions' Parquet footers, and the landing
folders' file listings against the manifests that assets/landing.py records beside each raw partition.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date

import pyarrow.parquet as pq

from assets.lake import Lake, connect, readable
from assets.landing import landing_files, landing_manifest, read_manifest
from assets.pyramid_map import Source, Volume


@dataclass(frozen=True)
class VolumeVerdict:
    """The day's rows against the median of the previous landed days."""

    rows: int
    history_days: int
    median: float | None  # None: too few landed days to judge
    deviation: float | None  # (rows - median) / median
    passed: bool

    def describe(self, volume: Volume) -> str:
        if self.median is None:
            return f"not judged: {self.history_days} earlier landed days, {volume.min_days} needed"
        change = "inf" if self.deviation == float("inf") else f"{self.deviation:+.0%}"
        verdict = "within" if self.passed else "beyond"
        return (
            f"{self.rows} rows against a median of {self.median:g} over the previous {self.history_days} "
            f"landed days ({change}), {verdict} the tolerance of ±{volume.tolerance:.0%}"
        )


def trailing_row_counts(lake: Lake, source_name: str, ds: date, window_days: int) -> list[int]:
    """Row counts of the source's last `window_days` raw partitions before `ds`, from their footers."""
    days = [d for d in lake.partitions("raw", source_name) if d < ds][-window_days:]
    return [pq.read_metadata(readable(lake.partition_file("raw", source_name, d))).num_rows for d in days]


def judge_volume(rows: int, history: list[int], volume: Volume) -> VolumeVerdict:
    """Pass when fewer than `min_days` days are known, or |rows - median| <= tolerance * median."""
    if len(history) < volume.min_days:
        return VolumeVerdict(rows, len(history), None, None, True)
    median = float(statistics.median(history))
    if median == 0:
        deviation = 0.0 if rows == 0 else float("inf")
    else:
        deviation = (rows - median) / median
    return VolumeVerdict(rows, len(history), median, deviation, abs(deviation) <= volume.tolerance)


def volume_verdict(lake: Lake, source_name: str, ds: date, rows: int, volume: Volume) -> VolumeVerdict:
    return judge_volume(rows, trailing_row_counts(lake, source_name, ds, volume.window_days), volume)


def late_files(lake: Lake, source: Source, skip: date | None = None) -> dict[date, list[str]]:
    """Per processed day (but `skip`), the landing files that are new or changed since its raw partition
    was landed. A file removed since is not reported: re-running would land less than before."""
    late = {}
    for day in lake.partitions("raw", source.name):
        if day == skip:
            continue
        current = landing_manifest(lake, landing_files(lake, source, day))
        recorded = _recorded(lake, source.name, day)
        changed = [entry["file"] for entry in current if not _matches(entry, recorded.get(entry["file"]))]
        if changed:
            late[day] = changed
    return late


def _recorded(lake: Lake, source_name: str, day: date) -> dict[str, dict]:
    """file -> its recorded entry; for a partition without a manifest (landed before manifests were
    kept), the files its rows came from, known by name only."""
    manifest = read_manifest(lake, source_name, day)
    if manifest is not None:
        return {entry["file"]: entry for entry in manifest}
    path = lake.partition_file("raw", source_name, day)
    rows = connect().sql("SELECT DISTINCT _source_file FROM read_parquet(?)", params=[str(path)]).fetchall()
    return {name: {"file": name} for (name,) in rows}


def _matches(current: dict, recorded: dict | None) -> bool:
    if recorded is None:
        return False  # a new file
    if "bytes" not in recorded:
        return True  # known by name only
    return (recorded["bytes"], recorded["mtime_ns"]) == (current["bytes"], current["mtime_ns"])


def rerun_advice(late: dict[date, list[str]]) -> str:
    """What to re-run: from the earliest day with a late file on (later days build on it)."""
    if not late:
        return "no landing file arrived or changed for a day already processed"
    first = min(late)
    days = ", ".join(f"{d} ({len(files)} file{'s' if len(files) > 1 else ''})" for d, files in sorted(late.items()))
    return (
        f"landing files arrived or changed after these days were processed: {days}; re-run from {first} "
        f"(`pyramid run --start {first}`), since later days build on it"
    )
