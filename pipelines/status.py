"""`pyramid status`: per day, what has landed, whether it is materialized, stale or failed, and which
checks did not pass; from file metadata, line counts and Dagster's run storage, never from the data.

Sources of each fact:
- landing: the map's `sources.<name>.path` glob for the day. Rows: for an up-to-date day, the records its
  run landed (the `landed_rows` its raw parse checks recorded in the instance; the raw table itself may
  since have lost erased users); for any other day, the files' lines (less one header line per CSV file),
  counted in large binary chunks without parsing.
- materialized: the day's top table (`goals/north_star`) has a partition file in the lake (one listing).
- stale: a landing file, or the map, is newer than the day's raw partition file in the lake.
- failed: the day's latest run in Dagster's instance failed; its failed steps and their causes come from
  the run's event log.
- checks: the asset check evaluations of the day's latest run that did not pass.
- sources the map leaves out are no column of the table: one line names them as not in this program's data,
  with the privacy decision that replaces the profiles' consent (assets/privacy_decisions.py).

Dagster's run and event-log storage is read directly from its SQLite files under `$DAGSTER_HOME`
(`history/runs.db`, `history/runs/<run_id>.db`, `history/runs/index.db`), read-only: `import dagster`
alone takes longer than this whole command may. Runs are matched to this data root by the
`pyramid/data_root` tag `pyramid run` puts on them; untagged runs (the UI, the schedule) count for the
default data root only. An instance on other storage (Postgres) shows the lake's view only.

The data root may be an object store (`s3://...`): files are found and read through the Lake helpers
(assets/lake.py), and times are the objects' last-modified times.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from assets import landing
from assets.lake import Lake, glob_files
from assets.privacy_decisions import decision_lines
from assets.pyramid_map import SOURCE_NAMES, PyramidMap

if TYPE_CHECKING:
    from upath import UPath

DATA_ROOT_TAG = "pyramid/data_root"
PARTITION_TAG = "dagster/partition"
# a run over consecutive days (`pyramid run` over a range, a backfill: pipelines/layers/ranges.py)
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
JOB = "nightly_pyramid"
TOP_TABLE = ("goals", "north_star")
CHUNK = 1 << 22
PARSE_CHECK, LANDED_ROWS = "rows_parseable", "landed_rows"  # pipelines/layers/raw.py
FAILED_DAYS_KEY = "failed_days"  # pipelines/layers/ranges.py (status does not import dagster)


@dataclass
class Landing:
    files: int
    rows: int


@dataclass
class Check:
    asset: str
    check: str
    severity: str


@dataclass
class DayStatus:
    day: str
    state: str  # ok, stale, failed, not run, missing
    note: str
    landing: dict[str, Landing]
    run_id: str | None = None
    run_status: str | None = None
    failed_steps: list[dict] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


@dataclass
class Run:
    run_id: str
    status: str
    day: str
    start: float
    ranged: bool = False  # one of several days of its run


def collect(lake: Lake, pyramid_map: PyramidMap, dagster_home: Path, default_root: Path) -> dict:
    """The status of every day from the map's start to the last one landed, materialized or run.

    `default_root` is the data root of untagged runs (those the UI or the schedule started)."""
    storage = _Storage(dagster_home)
    runs = storage.latest_runs(lake.root, default=lake.root == default_root)
    materialized = set(lake.partitions(*TOP_TABLE))
    days = _days(lake, pyramid_map, runs, materialized)
    statuses = [
        _day_status(lake, pyramid_map, day, runs.get(day.isoformat()), storage, day in materialized) for day in days
    ]
    last = max(runs.values(), key=lambda run: run.start, default=None)
    return {
        "data_root": str(lake.root),
        "map": str(pyramid_map.path),
        "dagster_home": str(dagster_home),
        "days": [asdict(status) for status in statuses],
        "last_run": {"day": last.day, "run_id": last.run_id, "status": last.status} if last else None,
        "not_declared": [name for name in SOURCE_NAMES if name not in pyramid_map.sources],
        "privacy": decision_lines(lake, pyramid_map),
    }


def _days(lake: Lake, pyramid_map: PyramidMap, runs: dict[str, Run], materialized: set[date]) -> list[date]:
    landed = [landing.landed_days(lake, source) for source in pyramid_map.sources.values()]
    known = {d for days in landed for d in days} | materialized
    known |= {date.fromisoformat(day) for day in runs}
    start = pyramid_map.start_date
    last = max(known, default=None)
    return [start + timedelta(days=n) for n in range((last - start).days + 1)] if last and last >= start else []


def _day_status(
    lake: Lake, pyramid_map: PyramidMap, day: date, run: Run | None, storage: _Storage, materialized: bool
) -> DayStatus:
    files = {
        name: glob_files(lake.root, source.path.format(ds=day.isoformat()))
        for name, source in pyramid_map.sources.items()
    }
    status = DayStatus(day.isoformat(), "", "", {}, run.run_id if run else None, run.status if run else None)
    if run is not None:
        status.checks = storage.failed_checks(run.run_id, day if run.ranged else None)
    absent = [name for name, paths in files.items() if not paths]
    if run is not None and run.status in ("FAILURE", "CANCELED"):
        status.failed_steps = storage.failed_steps(run.run_id)
        first = status.failed_steps[0] if status.failed_steps else {"step": "run", "cause": run.status.lower()}
        status.state, status.note = "failed", f"{first['step']}: {first['cause']}"
    elif materialized:
        changed = _changed_since_run(lake, pyramid_map, day, files)
        status.state = "stale" if changed else "ok"
        status.note = changed or _warned(status.checks)
    elif absent:
        status.state, status.note = "missing", f"no {', '.join(absent)} landed"
    else:
        status.state, status.note = "not run", "landed, not materialized"
    # a ranged run's parse checks record one day's rows: its other days count the files' lines
    recorded = storage.landed_rows(run.run_id) if run is not None and not run.ranged and status.state == "ok" else {}
    status.landing = {
        name: Landing(len(paths), _landed_rows(pyramid_map, name, paths, recorded)) for name, paths in files.items()
    }
    return status


def _landed_rows(pyramid_map: PyramidMap, source: str, paths: list[Path | UPath], recorded: dict[str, int]) -> int:
    """Rows landed: for an up-to-date day, as its run recorded them; for any other day, the files' lines."""
    if paths and source in recorded:
        return recorded[source]
    return sum(_rows(p, pyramid_map.sources[source].format) for p in paths)


def _changed_since_run(lake: Lake, pyramid_map: PyramidMap, day: date, files: dict[str, list[Path | UPath]]) -> str:
    """Why the day's lake partitions are older than their inputs; empty when they are not."""
    written = {name: _mtime(lake.partition_file("raw", name, day)) for name in files}
    changed = [name for name, paths in files.items() if any(_mtime(p) > written[name] for p in paths)]
    if changed:
        return f"{', '.join(changed)} landing changed after the run"
    if _mtime(pyramid_map.path) > min(written.values(), default=0.0):
        return "the map changed after the run"
    return ""


def _warned(checks: list[Check]) -> str:
    return f"checks not passed: {', '.join(sorted({c.check for c in checks}))}" if checks else ""


def _mtime(path: Path | UPath) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _rows(path: Path | UPath, fmt: str) -> int:
    """Data lines of a landing file: newlines (plus an unterminated last line), less a CSV header."""
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    lines += last != b"\n"
    return max(lines - (fmt == "csv"), 0)


class _Storage:
    """Read-only queries on Dagster's default SQLite run and event-log storage."""

    def __init__(self, home: Path) -> None:
        self.history = home / "history"

    def _query(self, db: Path, sql: str, params: tuple = ()) -> list[tuple]:
        if not db.exists():
            return []
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return con.execute(sql, params).fetchall()
        except sqlite3.Error:
            return []
        finally:
            con.close()

    def latest_runs(self, data_root: Path | UPath, default: bool) -> dict[str, Run]:
        """Each day's latest run of the nightly job on this data root (a run of one day or over a range)."""
        rows = self._query(
            self.history / "runs.db",
            """
            SELECT r.run_id, r.status, coalesce(p.value, s.value), coalesce(e.value, p.value),
                   coalesce(r.start_time, 0), d.value
            FROM runs r LEFT JOIN run_tags p ON p.run_id = r.run_id AND p.key = ?
            LEFT JOIN run_tags s ON s.run_id = r.run_id AND s.key = ?
            LEFT JOIN run_tags e ON e.run_id = r.run_id AND e.key = ?
            LEFT JOIN run_tags d ON d.run_id = r.run_id AND d.key = ?
            WHERE r.pipeline_name = ? AND coalesce(p.value, s.value) IS NOT NULL ORDER BY r.id""",
            (PARTITION_TAG, RANGE_START_TAG, RANGE_END_TAG, DATA_ROOT_TAG, JOB),
        )
        latest: dict[str, Run] = {}
        for run_id, status, first, last, start, root in rows:
            if (root == str(data_root)) if root else default:
                days = _days_between(date.fromisoformat(first), date.fromisoformat(last))
                for day in days:
                    latest[day] = Run(run_id, status, day, start, ranged=len(days) > 1)
        return latest

    def failed_steps(self, run_id: str) -> list[dict]:
        sql = "SELECT step_key, event FROM event_logs WHERE dagster_event_type = 'STEP_FAILURE' ORDER BY id"
        rows = self._query(self.history / "runs" / f"{run_id}.db", sql)
        steps = [{"step": step, **_cause(json.loads(event))} for step, event in rows]
        return sorted(steps, key=lambda s: s["error"] == REFUSED_BY_ANOTHER)  # the faulty source's own step first

    def landed_rows(self, run_id: str) -> dict[str, int]:
        """Per source, the records the run landed (the `landed_rows` of each raw asset's parse check)."""
        rows = self._query(
            self.history / "runs" / "index.db",
            """
            SELECT asset_key, evaluation_event FROM asset_check_executions
            WHERE run_id = ? AND check_name = ? AND execution_status IN ('SUCCEEDED', 'FAILED')""",
            (run_id, PARSE_CHECK),
        )
        found = {}
        for key, event in rows:
            metadata = json.loads(event)["dagster_event"]["event_specific_data"].get("metadata", {})
            value = metadata.get(LANDED_ROWS, {}).get("value")
            if isinstance(value, int):
                found[json.loads(key)[-1].removeprefix("raw_")] = value
        return found

    def failed_checks(self, run_id: str, day: date | None = None) -> list[Check]:
        """The run's checks that did not pass; of a ranged run, those that failed on `day`."""
        rows = self._query(
            self.history / "runs" / "index.db",
            """
            SELECT asset_key, check_name, evaluation_event FROM asset_check_executions
            WHERE run_id = ? AND execution_status IN ('FAILED', 'EXECUTION_FAILED') ORDER BY id""",
            (run_id,),
        )
        return sorted(
            (
                Check("/".join(json.loads(key)), name, _severity(event))
                for key, name, event in rows
                if day is None or _failed_on(event, day)
            ),
            key=lambda c: (c.asset, c.check),
        )


def _cause(event: dict) -> dict:
    """The innermost error of a STEP_FAILURE event: its class and message, without the class prefix."""
    from pipelines.errors import BLOCKED_CHECK, plain_message

    error = event["dagster_event"]["event_specific_data"]["error"]
    while error.get("cause") and error.get("cls_name") != BLOCKED_CHECK:
        error = error["cause"]
    cls_name = error.get("cls_name", "")
    return {"error": cls_name, "cause": plain_message(error.get("message", ""), cls_name)}


def _days_between(first: date, last: date) -> list[str]:
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _failed_on(event: str | None, day: date) -> bool:
    """Whether a ranged run's check failed on `day` (its `failed_days`); a check without them failed on every day."""
    if not event:
        return True
    metadata = json.loads(event)["dagster_event"]["event_specific_data"].get("metadata", {})
    failed_days = metadata.get(FAILED_DAYS_KEY, {}).get("text")
    return failed_days is None or day.isoformat() in failed_days


def _severity(event: str | None) -> str:
    if not event:
        return "error"
    data = json.loads(event)["dagster_event"]["event_specific_data"]
    return data.get("severity", {}).get("__enum__", "AssetCheckSeverity.ERROR").rsplit(".", 1)[-1].lower()


# --- the terminal view -------------------------------------------------------------------------------

STATE_WIDTH = 8
RUN_STATES = {"SUCCESS": "succeeded", "FAILURE": "failed", "CANCELED": "canceled"}


def render(status: dict, width: int) -> str:
    """A compact table, one line per day, at most `width` columns; then the last run's failures and checks."""
    days = status["days"]
    sources = list(days[0]["landing"]) if days else []
    heads = {name: name.split("_")[0] for name in sources}
    widths = {name: max(len(heads[name]), 7) for name in sources}
    lines = [f"data root {status['data_root']}", f"map       {status['map']}", ""]
    if not days:
        return "\n".join([*lines, *status.get("privacy", []), "nothing landed yet (try `pyramid generate`)"])
    lines.append(
        _fit(
            "  ".join(
                ["day       ", *(heads[n].rjust(widths[n]) for n in sources), "state".ljust(STATE_WIDTH), "note"]
            ),
            width,
        )
    )
    for day in days:
        counts = [_count(day["landing"][n]).rjust(widths[n]) for n in sources]
        lines.append(_fit("  ".join([day["day"], *counts, day["state"].ljust(STATE_WIDTH), day["note"]]), width))
    tally = {}
    for day in days:
        tally[day["state"]] = tally.get(day["state"], 0) + 1
    lines.append(f"{len(days)} days: " + ", ".join(f"{n} {state}" for state, n in tally.items()))
    return "\n".join([*lines, *status.get("privacy", []), *_last_run(status)])


def _count(landing: dict) -> str:
    return f"{landing['rows']:,}" if landing["files"] else "missing"


def _fit(line: str, width: int) -> str:
    line = line.rstrip()
    return line if len(line) <= width else line[: width - 1] + "…"


REFUSED_BY_ANOTHER = "DayRefused"  # assets.file_faults: stopped by another source's file fault


def _last_run(status: dict) -> list[str]:
    last = status["last_run"]
    if last is None:
        return ["", "no run of this data root in the Dagster instance"]
    day = next(d for d in status["days"] if d["day"] == last["day"])
    lines = ["", f"last run: {last['day']}, {RUN_STATES.get(last['status'], last['status'].lower())}"]
    own = [step for step in day["failed_steps"] if step["error"] != REFUSED_BY_ANOTHER]
    stopped = sorted(step["step"] for step in day["failed_steps"] if step["error"] == REFUSED_BY_ANOTHER)
    lines += [f"  failed {step['step']}: {step['cause']}" for step in own]
    if stopped:
        lines.append(f"  also stopped (the day is refused): {', '.join(stopped)}")
    lines += [f"  {c['severity']:<6} {c['asset']} {c['check']}" for c in day["checks"]]
    if not day["failed_steps"] and not day["checks"]:
        lines.append("  every check passed")
    return lines
