"""Benchmark of one nightly day: the real pipeline against the floor statement, on the same files.

For each size (the measured one, and a tiny day for the fixed cost) it generates the seeded sample
(pipelines/sample) for `history_days + 1` days into a temporary data root, materializes the history
days first (one process, not measured), then the measured day as `pyramid run` does it
(pipelines/runner.py: the nightly job's `execute_in_process` on the Dagster instance of DAGSTER_HOME,
here a temporary one) in a fresh process, which it measures:

- per step (a step is an asset, or a multi-asset with its checks): wall time and CPU time between
  Dagster's STEP_START and its end event, peak RSS within the step (Linux: the high-water mark is reset
  through /proc/self/clear_refs at each step start), the RSS at its start (what the process still holds from
  earlier steps), and rows (`dagster/row_count` of its materializations, else `rows`);
- in total: the process's wall and CPU time (imports, definitions, Dagster's bookkeeping included),
  and its peak RSS.

On the same landing files, in a fresh process, it times the floor: one DuckDB statement that reads
the day's events with read_json (typed columns) and transactions with read_csv, computes the per-user
daily measures the map declares (`user_daily`'s columns), and writes one Parquet file. It prints
R = (pipeline - fixed cost) / floor, the fixed cost being the same pipeline on a tiny day.

    .venv/bin/python benchmarks/bench_nightly.py --sizes 20000,200000,1000000 --memory-limit 2GB --threads 2 \
        --history-compare 30,90 --compare-users 5000 --markdown report.md --json measures.json

The tiny day is measured once; `--history-compare` runs one lake of `--compare-users` in day order and measures
the day after each length of history, then reads the lake's storage per table and day. `--from-json` renders
the report of earlier runs' measures (bench_report.py). See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEP_END = {"STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"}


# --- measuring a process --------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StepMeter:
    """Wraps the instance's `handle_new_event`: Dagster calls it in the step's own thread, in order."""

    def __init__(self) -> None:
        self.steps: dict[str, dict] = {}
        self.open: dict[str, tuple[float, float]] = {}
        self.peak_kib = _status_kib("VmHWM")
        self.lock = threading.Lock()

    def attach(self, instance: object) -> None:
        handle = instance.handle_new_event

        def wrapped(event, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            self.observe(event)
            return handle(event, *args, **kwargs)

        instance.handle_new_event = wrapped

    def observe(self, record: object) -> None:
        event = getattr(record, "dagster_event", None)
        if event is None or event.step_key is None:
            return
        kind, step = event.event_type_value, event.step_key
        with self.lock:
            if kind == "STEP_START":
                self.peak_kib = max(self.peak_kib, _status_kib("VmHWM"))
                _reset_peak()
                self.open[step] = (time.perf_counter(), _cpu(), _status_kib("VmRSS"))
            elif kind in STEP_END and step in self.open:
                wall0, cpu0, start_kib = self.open.pop(step)
                peak = _status_kib("VmHWM")
                self.peak_kib = max(self.peak_kib, peak)
                self.steps[step] = {
                    "wall": time.perf_counter() - wall0,
                    "cpu": _cpu() - cpu0,
                    "peak_mib": peak / 1024,
                    "start_mib": start_kib / 1024,  # what the process held at the step's start
                    "status": kind.removeprefix("STEP_").lower(),
                    "rows": self.steps.get(step, {}).get("rows", 0),
                }
            elif kind == "ASSET_MATERIALIZATION":
                metadata = event.step_materialization_data.materialization.metadata
                value = metadata.get("dagster/row_count", metadata.get("rows"))
                rows = getattr(value, "value", value)
                if isinstance(rows, int):
                    entry = self.steps.setdefault(step, {})
                    entry["rows"] = entry.get("rows", 0) + rows


def child_run(root: Path, days: list[date], out: Path | None) -> None:
    """Materialize `days` in order in this process; with `out`, measure each as a nightly run (one Dagster run a
    day) and write the measures there; without, as `pyramid run` does (chunks of days per run: history)."""
    if out is None:
        history_run(root, days)
        return
    started, cpu0 = time.perf_counter(), _cpu()
    from pipelines.definitions import NIGHTLY_JOB, defs
    from pipelines.instance import run_instance
    from pipelines.runner import SILENT
    from pipelines.status import DATA_ROOT_TAG

    job = defs.resolve_job_def(NIGHTLY_JOB)
    instance = run_instance()
    imported = time.perf_counter() - started
    meter = StepMeter()
    meter.attach(instance)
    ok = True
    for day in days:
        result = job.execute_in_process(
            partition_key=day.isoformat(),
            instance=instance,
            raise_on_error=False,
            run_config=SILENT,
            tags={DATA_ROOT_TAG: str(root)},
        )
        ok = ok and result.success
        if not ok:
            break
    measures = {
        "success": ok,
        "import_wall": imported,
        "wall": time.perf_counter() - started,
        "cpu": _cpu() - cpu0,
        "peak_mib": max(meter.peak_kib, _status_kib("VmHWM")) / 1024,
        "steps": meter.steps,
    }
    out.write_text(json.dumps(measures))
    if not ok:
        sys.exit(f"a run failed on {day}; rerun with --keep and look at `pyramid status`")


def history_run(root: Path, days: list[date]) -> None:
    """The days before the measured one, as `pyramid run` runs them, printing a line a day."""
    from rich.console import Console

    from pipelines.runner import run_days

    failure = run_days(days, Console(), root)
    if failure is not None:
        sys.exit(f"a run failed on {failure.day} at {failure.step}: {failure.cause}")


def floor_sql(landing: Path, day: date, target: Path) -> str:
    """The floor: one statement from the day's landing files to one Parquet file of the daily aggregates the
    sample map declares (its measures, compiled as assets/measures.py compiles them, over the files directly)."""
    from assets.measures import user_daily_sql
    from assets.pyramid_map import load_map

    events = landing / "events" / day.isoformat() / "*.jsonl"
    transactions = landing / "transactions" / day.isoformat() / "*.csv"
    relations = {
        "events": f"""read_json('{events}', format = 'newline_delimited', ignore_errors = true,
                           columns = {{event_id: 'VARCHAR', user_id: 'VARCHAR', event_type: 'VARCHAR',
                                      occurred_at: 'TIMESTAMPTZ', session_id: 'VARCHAR', channel: 'VARCHAR',
                                      campaign_id: 'VARCHAR', touchpoint_id: 'VARCHAR', properties: 'JSON'}})""",
        "transactions": f"""read_csv('{transactions}', header = true, ignore_errors = true,
                          columns = {{txn_id: 'VARCHAR', user_id: 'VARCHAR', occurred_at: 'TIMESTAMPTZ',
                                     amount: 'DECIMAL(18, 2)', currency: 'VARCHAR', txn_type: 'VARCHAR',
                                     merchant_category: 'VARCHAR', status: 'VARCHAR'}})""",
    }
    return f"COPY ({user_daily_sql(load_map().measures, relations)}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"


def child_floor(landing: Path, day: date, out: Path) -> None:
    import duckdb

    started, cpu0 = time.perf_counter(), _cpu()
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        target = Path(tmp) / "user_daily.parquet"
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        statement_started, statement_cpu = time.perf_counter(), _cpu()
        con.execute(floor_sql(landing, day, target))
        statement, statement_cpu = time.perf_counter() - statement_started, _cpu() - statement_cpu
        rows = con.sql(f"SELECT count(*) FROM read_parquet('{target}')").fetchall()[0][0]
    out.write_text(
        json.dumps(
            {
                "wall": statement,
                "process_wall": time.perf_counter() - started,
                "process_cpu": _cpu() - cpu0,
                "cpu": statement_cpu,
                "peak_mib": _status_kib("VmHWM") / 1024,
                "rows": rows,
            }
        )
    )


def child_generate(root: Path, users: int, days: int, seed: int, clean_profiles: bool = False) -> None:
    """The seeded sample; with `clean_profiles`, without the defects planted in profile updates."""
    from assets.pyramid_map import default_map_path, load_map
    from pipelines.sample import defects
    from pipelines.sample.generate import generate_sample

    if clean_profiles:  # a small sample has a few updates a day: one defect in a hundred fails the blocking check
        defects.PROFILE_DEFECT_RATES.update(dict.fromkeys(defects.PROFILE_DEFECT_RATES, 0.0))

    pyramid_map = load_map(default_map_path())  # $PYRAMID_MAP: the history comparison may move the start
    summary = generate_sample(root / "landing", users=users, days=days, seed=seed, pyramid_map=pyramid_map)
    (root / "generated.json").write_text(json.dumps({"rows_by_day": summary.rows_by_day, "start": str(summary.start)}))


# --- the parent -----------------------------------------------------------------------------------


def _child(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, __file__, *map(str, args)], env=env, check=True, cwd=ROOT)


def _data_root(work: Path, name: str, settings: dict[str, str], reuse: bool = False) -> tuple[Path, dict[str, str]]:
    """A fresh data root with its own DAGSTER_HOME (with `reuse`, the one a run with --keep left), and the
    environment of its child processes."""
    root = work / name
    if not reuse:
        (root / ".dagster").mkdir(parents=True)
        (root / ".dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, **settings, "PYRAMID_DATA_ROOT": str(root), "DAGSTER_HOME": str(root / ".dagster")}
    return root, {**env, "PYTHONPATH": str(ROOT)}


def _generate(
    root: Path, env: dict[str, str], users: int, days: int, seed: int, clean_profiles: bool = False
) -> tuple[dict, date]:
    _child(["_generate", root, users, days, seed, int(clean_profiles)], env)
    generated = json.loads((root / "generated.json").read_text())
    return generated, date.fromisoformat(generated["start"])


def _landed(generated: dict, day: date) -> dict[str, int]:
    return {source: counts.get(day.isoformat(), 0) for source, counts in generated["rows_by_day"].items()}


def _run_days(root: Path, env: dict[str, str], days: list[date]) -> None:
    if days:
        _child(["_run", root, ",".join(d.isoformat() for d in days)], env)


def measure_size(
    users: int, history_days: int, seed: int, work: Path, repeat: int, settings: dict[str, str], reuse: bool = False
) -> dict:
    """Generate, run the history, then run the measured day `repeat` times (same lake, re-materialized)
    and the floor as often; keep the fastest of each (the machine is shared). With `reuse`, the lake a run with
    --keep left in `work` has its history: only the measured day runs again."""
    root, env = _data_root(work, f"users-{users}", settings, reuse)
    started = time.perf_counter()
    if reuse:
        print(f"{users:,} users: the measured day again on {root}", flush=True)
        generated = json.loads((root / "generated.json").read_text())
        first = date.fromisoformat(generated["start"])
    else:
        print(f"{users:,} users: generating {history_days + 1} day(s), running {history_days} of history", flush=True)
        generated, first = _generate(root, env, users, history_days + 1, seed)
    day = first + timedelta(days=history_days)
    generate_s = time.perf_counter() - started
    if not reuse:
        _run_days(root, env, [first + timedelta(days=n) for n in range(history_days)])
    history_s = time.perf_counter() - started - generate_s
    runs, floors = [], []
    for n in range(repeat):
        out = root / f"run-{n}.json"
        _child(["_run", root, day.isoformat(), out], env)
        runs.append(json.loads(out.read_text()))
        out = root / f"floor-{n}.json"
        _child(["_floor", root / "landing", day.isoformat(), out], env)
        floors.append(json.loads(out.read_text()))
    return {
        "users": users,
        "day": day.isoformat(),
        "history_days": history_days,
        "landed": _landed(generated, day),
        "generate_s": generate_s,
        "history_s": history_s,
        "run": min(runs, key=lambda r: r["wall"]),
        "runs_wall": [r["wall"] for r in runs],
        "floor": min(floors, key=lambda f: f["wall"]),
        "floors_wall": [f["wall"] for f in floors],
        "storage": lake_storage(root),
        "settings": settings,
    }


def measure_history(users: int, lengths: list[int], seed: int, work: Path, settings: dict[str, str]) -> dict:
    """One lake, one generated window of max(lengths) + 1 days, run in day order; the day after each length of
    history is measured in a fresh process (the measured days differ: compare per landed row). Its sample has no
    defective profile updates: at a few thousand users, one bad update of the ~15 a day fails a blocking check."""
    longest = max(lengths)
    print(f"history comparison at {users:,} users: generating {longest + 1} days", flush=True)
    root, env = _data_root(work, f"history-{users}", settings)
    env = _map_ending_by_yesterday(root, env, longest + 1)
    generated, first = _generate(root, env, users, longest + 1, seed, clean_profiles=True)
    done, points = 0, []
    for length in sorted(lengths):
        print(f"history comparison: running days {done + 1}-{length} of {longest}", flush=True)
        _run_days(root, env, [first + timedelta(days=n) for n in range(done, length)])
        day, out = first + timedelta(days=length), root / f"history-{length}.json"
        _child(["_run", root, day.isoformat(), out], env)
        run = json.loads(out.read_text())
        points.append({"history_days": length, "day": day.isoformat(), "landed": _landed(generated, day), "run": run})
        print(
            f"history comparison: day {day} on {length} days: {run['wall']:.1f} s, CPU {run['cpu']:.1f} s", flush=True
        )
        done = length + 1
    landed = {day: sum(counts.get(day, 0) for counts in generated["rows_by_day"].values()) for day in _days(generated)}
    storage = lake_storage(root)
    return {"users": users, "points": points, "storage": storage, "landed_by_day": landed, "clean_profiles": True}


def _map_ending_by_yesterday(root: Path, env: dict[str, str], days: int) -> dict[str, str]:
    """The environment with a copy of the map whose start date leaves `days` days before today (UTC), when the
    map's own start is too late: the daily partitions end today, so later days cannot be run."""
    map_path = Path(env.get("PYRAMID_MAP", ROOT / "pyramid.yaml"))
    text = map_path.read_text()
    match = re.search(r'^(\s*start_date:\s*)"?(\d{4}-\d{2}-\d{2})"?', text, flags=re.MULTILINE)
    latest_start = datetime.now(UTC).date() - timedelta(days=days + 1)
    if match is None or date.fromisoformat(match.group(2)) <= latest_start:
        return env
    moved = root / "pyramid.yaml"
    moved.write_text(text[: match.start()] + f'{match.group(1)}"{latest_start.isoformat()}"' + text[match.end() :])
    print(f"history comparison: the map's start date moved to {latest_start} ({moved})", flush=True)
    return {**env, "PYRAMID_MAP": str(moved)}


def _days(generated: dict) -> list[str]:
    return sorted({day for counts in generated["rows_by_day"].values() for day in counts})


def lake_storage(root: Path) -> dict[str, dict[str, list[int]]]:
    """{layer/table: {ds or "-": [bytes, rows]}} over every file of the lake (rows from Parquet footers)."""
    import pyarrow.parquet as pq

    tables: dict[str, dict[str, list[int]]] = {}
    lake = root / "lake"
    for path in sorted(p for p in lake.rglob("*") if p.is_file() and not p.name.startswith(".")):
        parts = path.relative_to(lake).parts
        if len(parts) < 3:
            continue
        ds = next((part[3:] for part in parts if part.startswith("ds=")), "-")
        rows = pq.ParquetFile(path).metadata.num_rows if path.suffix == ".parquet" else 0
        entry = tables.setdefault(f"{parts[0]}/{parts[1]}", {}).setdefault(ds, [0, 0])
        entry[0] += path.stat().st_size
        entry[1] += rows
    return tables


def _conditions() -> str:
    load = os.getloadavg()
    return (
        f"cores {os.cpu_count()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at start, "
        f"DuckDB threads {os.environ.get('PYRAMID_DUCKDB_THREADS', 'default')}, "
        f"memory limit {os.environ.get('PYRAMID_DUCKDB_MEMORY_LIMIT', 'default')}"
    )


def _ints(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000, help="one size (see --sizes)")
    parser.add_argument("--sizes", type=_ints, help="sizes in users, e.g. 20000,200000,1000000 (overrides --users)")
    parser.add_argument("--history-days", type=int, default=2, help="days generated and run before the measured day")
    parser.add_argument(
        "--tiny-users",
        type=int,
        default=1000,
        help="the tiny day that gives the fixed cost, measured once (0: skip; below about 1,000 users the sample's "
        "defects can fail a blocking check)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="measured runs per size; the fastest is shown")
    parser.add_argument("--memory-limit", help="PYRAMID_DUCKDB_MEMORY_LIMIT of every run, e.g. 2GB")
    parser.add_argument("--threads", help="PYRAMID_DUCKDB_THREADS of every run")
    parser.add_argument("--history-compare", type=_ints, help="history lengths to compare, e.g. 30,90")
    parser.add_argument("--compare-users", type=int, default=5000, help="the size of the history comparison")
    parser.add_argument(
        "--demo-seconds", type=float, help="the demo's measured time (`demo finished in`), for its target"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the measures to this file")
    parser.add_argument("--markdown", type=Path, help="write the tables and the targets to this Markdown file")
    parser.add_argument("--from-json", type=Path, nargs="+", help="measure nothing: merge these measures and report")
    parser.add_argument("--keep", type=Path, help="keep the data roots in this folder (must not exist)")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="the folder of an earlier --keep: run only each size's measured day again on its lake (no tiny day)",
    )
    return parser.parse_args()


def measure(args: argparse.Namespace) -> dict:
    """Every measure the arguments ask for, in one dict (see bench_report.py)."""
    settings = {
        name: value
        for name, value in (
            ("PYRAMID_DUCKDB_MEMORY_LIMIT", args.memory_limit),
            ("PYRAMID_DUCKDB_THREADS", args.threads),
        )
        if value
    }
    os.environ.update(settings)
    measures: dict = {"conditions": _conditions(), "settings": settings, "tiny": None, "sizes": [], "history": None}
    print(measures["conditions"], flush=True)
    work = args.reuse or args.keep or Path(tempfile.mkdtemp(prefix="bench-nightly-"))
    work.mkdir(parents=True, exist_ok=not args.keep)
    reuse = args.reuse is not None
    try:
        if args.tiny_users and not reuse:
            measures["tiny"] = measure_size(args.tiny_users, args.history_days, args.seed, work, args.repeat, settings)
        for users in [args.users] if args.sizes is None else args.sizes:
            size = measure_size(users, args.history_days, args.seed, work, args.repeat, settings, reuse)
            measures["sizes"].append(size)
        if args.history_compare and not reuse:
            measures["history"] = measure_history(args.compare_users, args.history_compare, args.seed, work, settings)
    finally:
        if not (args.keep or reuse):
            shutil.rmtree(work, ignore_errors=True)
    return measures


def main() -> None:
    args = _arguments()
    if args.from_json:
        from bench_report import merge

        measures = merge([json.loads(p.read_text()) for p in args.from_json])
    else:
        measures = measure(args)
    if args.demo_seconds is not None:
        measures["demo_seconds"] = args.demo_seconds
    if args.json:
        args.json.write_text(json.dumps(measures, indent=2))
    from bench_report import markdown

    text = markdown(measures)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


def _dispatch(argv: list[str]) -> bool:
    """The hidden child commands: `_generate`, `_run`, `_floor`."""
    if not argv or not argv[0].startswith("_"):
        return False
    command, rest = argv[0], argv[1:]
    if command == "_generate":
        child_generate(Path(rest[0]), int(rest[1]), int(rest[2]), int(rest[3]), rest[4:] == ["1"])
    elif command == "_run":
        days = [date.fromisoformat(d) for d in rest[1].split(",")]
        child_run(Path(rest[0]), days, Path(rest[2]) if len(rest) > 2 else None)
    elif command == "_floor":
        child_floor(Path(rest[0]), date.fromisoformat(rest[1]), Path(rest[2]))
    else:
        sys.exit(f"unknown child command {command}")
    return True


if __name__ == "__main__":
    if not _dispatch(sys.argv[1:]):
        main()
