"""Benchmark of one nightly day: the real pipeline against the floor statement, on the same files.

For each size (the measured one, and a tiny day for the fixed cost) it generates the seeded sample
(pipelines/sample) for `history_days + 1` days into a temporary data root, materializes the history
days first (one process, not measured), then the measured day as `pyramid run` does it
(pipelines/runner.py: the nightly job's `execute_in_process` on the Dagster instance of DAGSTER_HOME,
here a temporary one) in a fresh process, which it measures:

- per step (a step is an asset, or a multi-asset with its checks): wall time and CPU time between
  Dagster's STEP_START and its end event, peak RSS within the step (Linux: the high-water mark is reset
  through /proc/self/clear_refs at each step start), and rows (`dagster/row_count` of its
  materializations, else `rows`);
- in total: the process's wall and CPU time (imports, definitions, Dagster's bookkeeping included),
  and its peak RSS.

On the same landing files, in a fresh process, it times the floor: one DuckDB statement that reads
the day's events with read_json (typed columns) and transactions with read_csv, computes the per-user
daily measures the map declares (`user_daily`'s columns), and writes one Parquet file. It prints
R = (pipeline - fixed cost) / floor, the fixed cost being the same pipeline on a tiny day.

    .venv/bin/python benchmarks/bench_nightly.py [--users 20000] [--history-days 1] [--tiny-users 1000]

History is generated and run, not faked: `--history-days 90` at 1M users costs the history days'
generation (the generator draws every day in memory) and runs first; see docs/architecture.md,
"Performance".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
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
                self.open[step] = (time.perf_counter(), _cpu())
            elif kind in STEP_END and step in self.open:
                wall0, cpu0 = self.open.pop(step)
                peak = _status_kib("VmHWM")
                self.peak_kib = max(self.peak_kib, peak)
                self.steps[step] = {
                    "wall": time.perf_counter() - wall0,
                    "cpu": _cpu() - cpu0,
                    "peak_mib": peak / 1024,
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
    """Materialize `days` in order in this process; with `out`, measure and write the measures there."""
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
    if out is not None:
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
        sys.exit(f"a run failed on {days[-1]}; rerun with --keep and look at `pyramid status`")


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
        statement_started = time.perf_counter()
        con.execute(floor_sql(landing, day, target))
        statement = time.perf_counter() - statement_started
        rows = con.sql(f"SELECT count(*) FROM read_parquet('{target}')").fetchall()[0][0]
    out.write_text(
        json.dumps(
            {
                "wall": statement,
                "process_wall": time.perf_counter() - started,
                "cpu": _cpu() - cpu0,
                "peak_mib": _status_kib("VmHWM") / 1024,
                "rows": rows,
            }
        )
    )


def child_generate(root: Path, users: int, days: int, seed: int) -> None:
    from pipelines.sample.generate import generate_sample

    summary = generate_sample(root / "landing", users=users, days=days, seed=seed)
    (root / "generated.json").write_text(json.dumps({"rows_by_day": summary.rows_by_day, "start": str(summary.start)}))


# --- the parent -----------------------------------------------------------------------------------


def _child(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, __file__, *args], env=env, check=True, cwd=ROOT)


def measure_size(users: int, history_days: int, seed: int, work: Path, repeat: int) -> dict:
    """Generate, run the history, then run the measured day `repeat` times (same lake, re-materialized)
    and the floor as often; keep the fastest of each (the machine is shared)."""
    root = work / f"users-{users}"
    root.mkdir(parents=True)
    env = {
        **os.environ,
        "PYRAMID_DATA_ROOT": str(root),
        "DAGSTER_HOME": str(root / ".dagster"),
        "PYTHONPATH": str(ROOT),
    }
    (root / ".dagster").mkdir()
    (root / ".dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    started = time.perf_counter()
    _child(["_generate", str(root), str(users), str(history_days + 1), str(seed)], env)
    generated = json.loads((root / "generated.json").read_text())
    first = date.fromisoformat(generated["start"])
    day = first + timedelta(days=history_days)
    generate_s = time.perf_counter() - started
    if history_days:
        days = [first + timedelta(days=n) for n in range(history_days)]
        _child(["_run", str(root), ",".join(d.isoformat() for d in days)], env)
    history_s = time.perf_counter() - started - generate_s
    runs, floors = [], []
    for n in range(repeat):
        out = root / f"run-{n}.json"
        _child(["_run", str(root), day.isoformat(), str(out)], env)
        runs.append(json.loads(out.read_text()))
        out = root / f"floor-{n}.json"
        _child(["_floor", str(root / "landing"), day.isoformat(), str(out)], env)
        floors.append(json.loads(out.read_text()))
    return {
        "users": users,
        "day": day.isoformat(),
        "history_days": history_days,
        "landed": {source: counts.get(day.isoformat(), 0) for source, counts in generated["rows_by_day"].items()},
        "generate_s": generate_s,
        "history_s": history_s,
        "run": min(runs, key=lambda r: r["wall"]),
        "runs_wall": [r["wall"] for r in runs],
        "floor": min(floors, key=lambda f: f["wall"]),
        "floors_wall": [f["wall"] for f in floors],
    }


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [" | ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(lines)


def report(size: dict, tiny: dict | None) -> str:
    run, floor = size["run"], size["floor"]
    steps = sorted(run["steps"].items(), key=lambda kv: -kv[1].get("wall", 0))
    rows = [
        [
            step,
            f"{m.get('wall', 0):.2f}",
            f"{m.get('cpu', 0):.2f}",
            f"{m.get('peak_mib', 0):,.0f}",
            f"{m.get('rows', 0):,}",
        ]
        for step, m in steps
    ]
    stepped = sum(m.get("wall", 0) for m in run["steps"].values())
    rows.append(["(outside steps: imports, definitions, run bookkeeping)", f"{run['wall'] - stepped:.2f}", "", "", ""])
    rows.append(
        ["TOTAL pipeline (the run's process)", f"{run['wall']:.2f}", f"{run['cpu']:.2f}", f"{run['peak_mib']:,.0f}", ""]
    )
    rows.append(
        [
            "floor statement",
            f"{floor['wall']:.2f}",
            f"{floor['cpu']:.2f}",
            f"{floor['peak_mib']:,.0f}",
            f"{floor['rows']:,}",
        ]
    )
    landed = ", ".join(f"{k} {v:,}" for k, v in size["landed"].items())
    lines = [
        f"\n## {size['users']:,} users, day {size['day']} on {size['history_days']} day(s) of history",
        f"landed that day: {landed}",
        f"generate {size['generate_s']:.0f}s, history {size['history_s']:.0f}s; "
        f"runs (s): {', '.join(f'{w:.1f}' for w in size['runs_wall'])}; "
        f"floors (s): {', '.join(f'{w:.2f}' for w in size['floors_wall'])}; "
        f"imports+definitions {run['import_wall']:.1f}s",
        _table(["step", "wall s", "cpu s", "peak MiB", "rows"], rows),
    ]
    if tiny is not None:
        fixed = tiny["run"]["wall"]
        r = (run["wall"] - fixed) / floor["wall"]
        lines.append(
            f"fixed cost (the same pipeline, {tiny['users']:,} users): {fixed:.2f}s  ->  "
            f"R = ({run['wall']:.2f} - {fixed:.2f}) / {floor['wall']:.2f} = {r:.1f}"
        )
    return "\n".join(lines)


def _conditions() -> str:
    load = os.getloadavg()
    return (
        f"cores {os.cpu_count()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at start, "
        f"DuckDB threads {os.environ.get('PYRAMID_DUCKDB_THREADS', 'default')}, "
        f"memory limit {os.environ.get('PYRAMID_DUCKDB_MEMORY_LIMIT', 'default')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--history-days", type=int, default=1, help="days generated and run before the measured day")
    parser.add_argument(
        "--tiny-users",
        type=int,
        default=1000,
        help="the tiny day that gives the fixed cost (0: skip; below about 1,000 users the sample's defects can "
        "fail a blocking check)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="measured runs per size; the fastest is shown")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the measures to this file")
    parser.add_argument("--keep", type=Path, help="keep the data roots in this folder (must not exist)")
    args = parser.parse_args()
    print(_conditions(), flush=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-nightly-"))
    work.mkdir(parents=True, exist_ok=not args.keep)
    try:
        tiny = (
            measure_size(args.tiny_users, args.history_days, args.seed, work, args.repeat) if args.tiny_users else None
        )
        size = measure_size(args.users, args.history_days, args.seed, work, args.repeat)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if tiny is not None:
        print(report(tiny, None))
    print(report(size, tiny))
    if args.json:
        args.json.write_text(json.dumps({"conditions": _conditions(), "size": size, "tiny": tiny}, indent=2))


def _dispatch(argv: list[str]) -> bool:
    """The hidden child commands: `_generate`, `_run`, `_floor`."""
    if not argv or not argv[0].startswith("_"):
        return False
    command, rest = argv[0], argv[1:]
    if command == "_generate":
        child_generate(Path(rest[0]), int(rest[1]), int(rest[2]), int(rest[3]))
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
