"""Crashes and concurrency, with real `pyramid run` processes on a tiny sample.

- A run killed with SIGKILL at each crash point (assets/crash_points.py: landing, validation, segments,
  catalog), then run again, writes the lake byte for byte as an uninterrupted run does.
- A process that queries the catalog in a loop while a run rewrites the lake sees no failed query.
- A second run of a day in progress is refused, naming the day and the process; a lock left by a
  killed run is taken over.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from assets.crash_points import KILL_AT_ENV
from assets.pyramid_map import load_map
from pipelines.locks import RunLocked, acquire, lock_path, release
from pipelines.sample.generate import generate_sample

ROOT = Path(__file__).resolve().parent.parent
POINTS = ["landing", "validation", "segments", "catalog"]
USERS, DAYS, SEED = 300, 2, 11
VIEWS = ["events", "user_features", "segment_membership", "audiences", "touchpoint_exports", "goal_metrics"]


def pyramid(root: Path, *args: str, kill_at: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DAGSTER_HOME": str(root / "dagster_home")}
    env.pop(KILL_AT_ENV, None)
    if kill_at:
        env[KILL_AT_ENV] = kill_at
    (root / "dagster_home").mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pipelines.cli",
        "--data-root",
        str(root / "data"),
        "--map",
        str(ROOT / "pyramid.yaml"),
        *args,
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def lake_bytes(root: Path) -> dict[str, str]:
    """Every partition file of the lake: relative path -> sha256 of its bytes."""
    base = root / "data" / "lake"
    files = sorted(base.rglob("*.parquet"))
    return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


class Querier(threading.Thread):
    """Queries every catalog view read-only in a loop until stopped; counts the queries and keeps failures."""

    def __init__(self, warehouse: Path):
        super().__init__(daemon=True)
        self.warehouse, self.stop, self.queries, self.failures = warehouse, threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                con = duckdb.connect(str(self.warehouse), read_only=True)
                try:
                    for view in VIEWS:
                        con.execute(f"SELECT count(*) FROM {view}").fetchall()
                        self.queries += 1
                finally:
                    con.close()
            except Exception as err:  # noqa: BLE001 - any failed query is the finding
                self.failures.append(f"{type(err).__name__}: {err}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One uninterrupted root and one killed at every crash point, both for the first day; then the
    second day on the uninterrupted root while a querier loops and a second run of that day is tried."""
    pmap = load_map()
    first, second = pmap.start_date, pmap.start_date + timedelta(days=1)
    clean, crashed = tmp_path_factory.mktemp("clean"), tmp_path_factory.mktemp("crashed")
    for root in (clean, crashed):
        generate_sample(root / "data" / "landing", users=USERS, days=DAYS, seed=SEED, pyramid_map=pmap)
    reference = pyramid(clean, "run", "--date", str(first))
    killed = {}
    for point in POINTS:
        process = pyramid(crashed, "run", "--date", str(first), kill_at=point)
        killed[point] = (process.wait(timeout=300), process.stdout.read())
    rerun = pyramid(crashed, "run", "--date", str(first))
    outcome = {
        "reference": (reference.wait(timeout=300), reference.stdout.read()),
        "rerun": (rerun.wait(timeout=300), rerun.stdout.read()),
        "killed": killed,
        "clean_lake": lake_bytes(clean),
        "crashed_lake": lake_bytes(crashed),
        "stale_locks": sorted(p.name for p in (crashed / "data" / ".locks").glob("*")),
    }

    querier = Querier(clean / "data" / "warehouse.duckdb")
    querier.start()
    day_two = pyramid(clean, "run", "--date", str(second))
    while not lock_path(clean / "data", second).exists() and day_two.poll() is None:
        time.sleep(0.05)
    second_run = pyramid(clean, "run", "--date", str(second))
    outcome["second_run"] = (second_run.wait(timeout=300), second_run.stdout.read(), day_two.pid)
    outcome["day_two"] = (day_two.wait(timeout=300), day_two.stdout.read())
    querier.stop.set()
    querier.join(timeout=30)
    outcome["querier"] = querier
    outcome["second"] = second
    return outcome


def test_each_crash_point_kills_the_run(runs):
    for point, (code, output) in runs["killed"].items():
        assert code == -signal.SIGKILL, (point, output)


def test_a_rerun_after_the_kills_writes_what_an_uninterrupted_run_writes(runs):
    assert runs["reference"][0] == 0, runs["reference"][1]
    assert runs["rerun"][0] == 0, runs["rerun"][1]
    assert runs["crashed_lake"] == runs["clean_lake"]
    assert len(runs["clean_lake"]) > 20
    assert runs["stale_locks"] == []  # the killed runs' locks were taken over, then released


def test_catalog_queries_never_fail_during_a_run(runs):
    assert runs["day_two"][0] == 0, runs["day_two"][1]
    querier = runs["querier"]
    assert querier.failures == []
    assert querier.queries > len(VIEWS)


def test_a_second_run_of_a_day_in_progress_is_refused(runs):
    code, output, holder = runs["second_run"]
    assert code == 1
    assert f"{runs['second']} is already being run" in output and f"process {holder}" in output


def test_a_lock_of_a_live_process_refuses_and_a_dead_ones_is_taken_over(tmp_path):
    day = load_map().start_date
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock_path(tmp_path, day).parent.mkdir(parents=True)
        lock_path(tmp_path, day).write_text(f"{sleeper.pid}\n")
        with pytest.raises(RunLocked, match=f"by process {sleeper.pid}"):
            acquire(tmp_path, day)
    finally:
        sleeper.kill()
        sleeper.wait()
    path = acquire(tmp_path, day)  # the holder is dead: stale, taken over
    assert path.read_text().strip() == str(os.getpid())
    release(path)
    assert not path.exists()
