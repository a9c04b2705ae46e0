"""`pyramid`: generate the sample, run the pyramid for a day or a range, the demo, the map check, the UI."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console

from assets.lake import PROJECT_ROOT, Lake
from assets.pyramid_map import MapError, default_map_path, load_map

console = Console(width=None if sys.stdout.isatty() else 120)
DEMO_USERS = 20_000
DEMO_DAYS = 30


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except MapError as err:
        console.print(f"[red]{err}[/red]")
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyramid", description=__doc__)
    parser.add_argument("--data-root", type=Path, default=None, help="data root (default: ./data or $PYRAMID_DATA_ROOT)")
    parser.add_argument("--map", type=Path, default=None, help="the program's map (default: ./pyramid.yaml)")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write the seeded sample landing files")
    _sample_options(generate)
    generate.set_defaults(handler=cmd_generate)

    run = commands.add_parser("run", help="materialize the pyramid for a day or a range of days, in order")
    run.add_argument("--date", type=date.fromisoformat, help="one day")
    run.add_argument("--start", type=date.fromisoformat, help="first day (default: the map's start_date)")
    run.add_argument("--end", type=date.fromisoformat, help="last day (default: the last landed day)")
    run.set_defaults(handler=cmd_run)

    demo = commands.add_parser("demo", help="generate the sample, run every day, print the summary")
    _sample_options(demo)
    demo.set_defaults(handler=cmd_demo)

    summary = commands.add_parser("summary", help="print the pyramid's summary from the lake")
    summary.add_argument("--json", action="store_true", help="machine-readable output")
    summary.set_defaults(handler=cmd_summary)

    segments = commands.add_parser("segments", help="print the segments' summary and baselines from the lake")
    segments.add_argument("--date", type=date.fromisoformat, help="as-of day (default: the last one materialized)")
    segments.add_argument("--json", action="store_true", help="machine-readable output")
    segments.set_defaults(handler=cmd_segments)

    report = commands.add_parser("report", help="print the scorecard's path (reports/scorecard), or open it")
    report.add_argument("--date", type=date.fromisoformat, help="the day's page (default: the latest)")
    report.add_argument("--open", action="store_true", help="open it in the browser")
    report.set_defaults(handler=cmd_report)

    check = commands.add_parser("check", help="check the map (pyramid.yaml) and print what it declares")
    check.set_defaults(handler=cmd_check)

    ui = commands.add_parser("ui", help="start the Dagster UI on this project's instance")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=cmd_ui)
    return parser


def _sample_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=DEMO_USERS)
    parser.add_argument("--days", type=int, default=DEMO_DAYS)
    parser.add_argument("--seed", type=int, default=7)


def _setup(args) -> tuple[Lake, Path]:
    """Point the code location (which reads the environment) at the chosen data root and map."""
    if args.data_root:
        os.environ["PYRAMID_DATA_ROOT"] = str(args.data_root.resolve())
    if args.map:
        os.environ["PYRAMID_MAP"] = str(args.map.resolve())
    _ensure_dagster_home()
    return Lake.default(), default_map_path()


def _ensure_dagster_home() -> None:
    """Dagster's local instance lives in the project (`.dagster/`) unless DAGSTER_HOME says otherwise."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")


def cmd_generate(args) -> int:
    lake, map_path = _setup(args)
    summary = _generate(lake, load_map(map_path), args)
    console.print(f"  {summary.generate_seconds:.1f}s generating, {summary.write_seconds:.1f}s writing")
    rows = ", ".join(f"{source} {count:,}" for source, count in summary.rows.items())
    console.print(f"  {summary.users:,} users, {summary.days} days from {summary.start}, seed {summary.seed}: {rows}")
    console.print(f"  planted truth: {summary.truth_path}\n  defect plan:   {summary.defect_plan_path}")
    return 0


def _generate(lake: Lake, pyramid_map, args):
    """Write the seeded sample into the landing folder, with a spinner; return its summary."""
    from pipelines.sample.generate import generate_sample

    started = time.perf_counter()
    with console.status("generating the sample ...") as status:
        summary = generate_sample(lake.landing, users=args.users, days=args.days, seed=args.seed,
                                  pyramid_map=pyramid_map, progress=status.update)
    console.print(f"[green]sample generated[/green] in {lake.landing}: {args.users:,} users, {args.days} days "
                  f"({time.perf_counter() - started:.1f}s)")
    return summary


def cmd_run(args) -> int:
    lake, map_path = _setup(args)
    from pipelines.runner import run_days

    pyramid_map = load_map(map_path)
    days = _days_to_run(args, lake, pyramid_map.start_date)
    if not days:
        console.print("[yellow]nothing to run: no landing data found[/yellow] (try `pyramid generate`)")
        return 1
    return 0 if run_days(days, console) else 1


def cmd_demo(args) -> int:
    lake, map_path = _setup(args)
    from pipelines.runner import run_days
    from pipelines.summary import print_summary

    pyramid_map = load_map(map_path)
    started = time.perf_counter()
    for stale in (lake.root / "lake", lake.reports):
        shutil.rmtree(stale, ignore_errors=True)
    _generate(lake, pyramid_map, args)
    generated = time.perf_counter()
    days = [pyramid_map.start_date + timedelta(days=n) for n in range(args.days)]
    ok = run_days(days, console)
    print_summary(lake, pyramid_map, console)
    console.print(f"\ndemo finished in {time.perf_counter() - started:.0f}s "
                  f"(generate {generated - started:.0f}s, pipeline {time.perf_counter() - generated:.0f}s)")
    _print_next_steps(lake)
    return 0 if ok else 1


def cmd_summary(args) -> int:
    lake, map_path = _setup(args)
    from pipelines.summary import print_summary

    print_summary(lake, load_map(map_path), console, as_json=args.json)
    return 0


def cmd_segments(args) -> int:
    """Reads the lake only: no Dagster instance (unlike _setup) and no Great Expectations import."""
    from pipelines.summary import segments_data, segments_json, segments_report

    lake = Lake(args.data_root.resolve()) if args.data_root else Lake.default()
    days = lake.partitions("segments", "segment_summary")
    as_of = args.date or (days[-1] if days else None)
    tables = segments_report(lake, as_of, console.width) if as_of else None
    if tables is None:
        where = f"for {as_of} " if as_of else ""
        console.print(f"[yellow]no segment summary {where}in {lake.root}[/yellow] (try `pyramid run`)")
        return 1
    if args.json:
        print(segments_json(segments_data(lake, as_of)))
        return 0
    console.print(*tables)
    return 0


def cmd_report(args) -> int:
    """Reads the reports folder only: no Dagster, no GX."""
    import webbrowser

    from assets.scorecard import report_path

    lake = Lake(args.data_root.resolve()) if args.data_root else Lake.default()
    path = report_path(lake, args.date)
    if not path.exists():
        console.print(f"[yellow]no scorecard at {path}[/yellow] (try `pyramid run`)")
        return 1
    print(path)
    if args.open:
        webbrowser.open(path.as_uri())
    return 0


def cmd_check(args) -> int:
    _, map_path = _setup(args)
    m = load_map(map_path)
    console.print(f"[green]{map_path} is valid[/green]: North Star {m.north_star.id} ({m.north_star.metric}), "
                  f"{len(m.goals)} goals, {len(m.touchpoints)} touchpoints, {len(m.campaigns)} campaigns, "
                  f"{len(m.segments.definitions)} segments, partitions from {m.start_date}")
    return 0


def cmd_ui(args) -> int:
    _setup(args)
    console.print(f"Dagster UI on http://127.0.0.1:{args.port} (instance: {os.environ['DAGSTER_HOME']})")
    return subprocess.call([sys.executable, "-m", "dagster", "dev", "-p", str(args.port)], cwd=PROJECT_ROOT)


def _days_to_run(args, lake: Lake, start: date) -> list[date]:
    if args.date:
        return [args.date]
    first = args.start or start
    last = args.end or _last_landed_day(lake)
    if last is None:
        return []
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _last_landed_day(lake: Lake) -> date | None:
    folders = [p.name for p in (lake.landing / "events").glob("*") if p.is_dir()]
    days = []
    for name in folders:
        try:
            days.append(date.fromisoformat(name))
        except ValueError:
            continue
    return max(days, default=None)


def _print_next_steps(lake: Lake) -> None:
    console.print("\n[bold]Next[/bold]")
    console.print(f"  query the catalog:  duckdb -readonly {lake.warehouse} -c 'select * from segment_summary'")
    console.print(f"  or in Python:       duckdb.connect('{lake.warehouse}', read_only=True)")
    console.print("  open the UI:        .venv/bin/pyramid ui   (lineage, checks and run history)")


if __name__ == "__main__":
    sys.exit(main())
