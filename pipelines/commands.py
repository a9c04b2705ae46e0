"""The handlers of `pyramid`'s commands (pipelines/cli.py parses the arguments and dispatches to them)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from assets.lake import Lake, is_local, local_folder
from assets.pyramid_map import DEFAULT_MAP_PATH, SOURCE_NAMES, PyramidMap, default_map_path, load_map
from pipelines.errors import EXIT_DAY_FAILED, EXIT_OK, EXIT_USAGE, print_error, print_failure
from pipelines.safety import confirm_removal, holds_only_a_sample, landing_folders, write_marker

if TYPE_CHECKING:  # the generator is imported only by the commands that generate
    from upath import UPath

    from pipelines.sample.generate import GenerationSummary

console = Console(width=None if sys.stdout.isatty() else 120)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def _setup(args: argparse.Namespace, fallback_map: Path | None = None, object_store: bool = False) -> tuple[Lake, Path]:
    """Point the code location (which reads the environment) at the chosen data root and map: the options,
    else the environment, else `data/` and `pyramid.yaml` in the current folder (else `fallback_map`). Both
    are exported resolved, so every process of the run agrees whatever its working directory. An
    object-store root is refused unless the command takes one (`object_store`)."""
    if args.data_root:
        os.environ["PYRAMID_DATA_ROOT"] = str(_resolved(args.data_root))
    if args.map:
        os.environ["PYRAMID_MAP"] = str(args.map.resolve())
    map_path = default_map_path()
    if fallback_map and "PYRAMID_MAP" not in os.environ and not map_path.exists():
        map_path = fallback_map
    os.environ["PYRAMID_MAP"] = str(map_path.resolve())
    lake = Lake.default()
    os.environ["PYRAMID_DATA_ROOT"] = str(lake.root if object_store else _local_lake(lake, args.command).root)
    _ensure_dagster_home()
    return lake, map_path.resolve()


def _local_lake(lake: Lake, command: str) -> Lake:
    """The lake, when its root is a local folder: only `pyramid run` and `status` take an object-store root."""
    if not is_local(lake.root):
        print_error(
            errors,
            f"data root {lake.root}: not supported yet: pyramid {command}",
            [
                "on an object-store root, `pyramid run` and `pyramid status` work; the other commands write or "
                "read local landing files, reports or samples"
            ],
            'run this command on a local data root, or run the Dagster job (docs/scaling.md, "Object store")',
        )
        raise SystemExit(EXIT_USAGE)
    return lake


def _resolved(root: Path | UPath) -> Path | UPath:
    return root.resolve() if is_local(root) else root


def _ensure_dagster_home() -> None:
    """Dagster's local instance lives in the current folder (`.dagster/`) unless DAGSTER_HOME says otherwise."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / ".dagster"))).resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")


def cmd_generate(args: argparse.Namespace) -> int:
    lake, map_path = _setup(args, fallback_map=DEFAULT_MAP_PATH)
    pyramid_map = load_map(map_path)
    if not _effects_fit(pyramid_map, args):
        return EXIT_USAGE
    if not confirm_removal(errors, landing_folders(lake, list(SOURCE_NAMES)), args.yes):
        return EXIT_USAGE
    summary = _generate(lake, pyramid_map, args)
    console.print(f"  {summary.generate_seconds:.1f}s generating, {summary.write_seconds:.1f}s writing")
    rows = ", ".join(f"{source} {count:,}" for source, count in summary.rows.items())
    console.print(f"  {summary.users:,} users, {summary.days} days from {summary.start}, seed {summary.seed}: {rows}")
    console.print(f"  planted truth: {summary.truth_path}\n  defect plan:   {summary.defect_plan_path}")
    return EXIT_OK


def _effects_fit(pyramid_map: PyramidMap, args: argparse.Namespace) -> bool:
    """Whether the `--effect` options name campaigns of the map with lifts that can be planted (else say why)."""
    from pipelines.sample.effects import campaign_effects

    try:
        campaign_effects(pyramid_map, dict(args.effect))
    except ValueError as error:
        print_error(
            errors,
            "the effects to plant do not fit the map",
            [str(error)],
            "name a campaign of the map that has a goal, with a lift above -1: --effect savings_nudge=0.2",
        )
        return False
    return True


def _generate(lake: Lake, pyramid_map: PyramidMap, args: argparse.Namespace) -> GenerationSummary:
    """Write the seeded sample into the landing folder, with a spinner, and mark it; return its summary."""
    from pipelines.sample.generate import generate_sample

    started = time.perf_counter()
    with console.status("generating the sample ...") as status:
        summary = generate_sample(
            lake.landing,
            users=args.users,
            days=args.days,
            seed=args.seed,
            pyramid_map=pyramid_map,
            effects=dict(args.effect),
            progress=status.update,
        )
    write_marker(lake)
    console.print(
        f"[green]sample generated[/green] in {lake.landing}: {args.users:,} users, {args.days} days "
        f"({time.perf_counter() - started:.1f}s)"
    )
    return summary


def cmd_run(args: argparse.Namespace) -> int:
    lake, map_path = _setup(args, object_store=True)
    pyramid_map = load_map(map_path)
    days = _days_to_run(args, lake, pyramid_map.start_date)
    if not days:
        print_error(
            errors,
            "nothing to run",
            [f"no landing data found in {lake.landing}"],
            "land the day's files, or write a sample with `pyramid generate`",
        )
        return EXIT_DAY_FAILED
    if not _data_fits(lake, pyramid_map, days, quiet=True):
        return EXIT_USAGE
    from pipelines.runner import run_days

    failure = run_days(days, console, lake.root)
    if failure is None:
        return EXIT_OK
    print_failure(errors, failure, local_folder(lake.root) / "logs", args.verbose)
    return failure.exit_code


def cmd_demo(args: argparse.Namespace) -> int:
    lake, map_path = _setup(args, fallback_map=DEFAULT_MAP_PATH)
    pyramid_map = load_map(map_path)
    derived = [lake.root / "lake", lake.reports]
    if not _effects_fit(pyramid_map, args):
        return EXIT_USAGE
    if not holds_only_a_sample(lake) and not confirm_removal(
        errors, [*landing_folders(lake, list(SOURCE_NAMES)), *derived], args.yes
    ):
        return EXIT_USAGE
    from pipelines.runner import run_days
    from pipelines.summary import print_summary

    started = time.perf_counter()
    for stale in derived:
        shutil.rmtree(stale, ignore_errors=True)
    _generate(lake, pyramid_map, args)
    generated = time.perf_counter()
    days = [pyramid_map.start_date + timedelta(days=n) for n in range(args.days)]
    failure = run_days(days, console, lake.root)
    print_summary(lake, pyramid_map, console)
    console.print(
        f"\ndemo finished in {time.perf_counter() - started:.0f}s "
        f"(generate {generated - started:.0f}s, pipeline {time.perf_counter() - generated:.0f}s)"
    )
    _print_next_steps(lake)
    if failure is None:
        return EXIT_OK
    print_failure(errors, failure, lake.root / "logs", args.verbose)
    return failure.exit_code


def cmd_status(args: argparse.Namespace) -> int:
    """Reads file metadata and Dagster's SQLite storage: no Dagster import (pipelines/status.py)."""
    from pipelines.status import collect, render

    untagged_root = Lake.default().root  # where the UI's and the schedule's runs write: before --data-root
    lake, map_path = _setup(args, object_store=True)
    status = collect(lake, load_map(map_path), Path(os.environ["DAGSTER_HOME"]), untagged_root)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        width = min(max(shutil.get_terminal_size((100, 24)).columns, 80), 120)
        console.print(Text(render(status, width)), soft_wrap=True, highlight=False)
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    lake, map_path = _setup(args)
    from pipelines.summary import print_summary

    print_summary(lake, load_map(map_path), console, as_json=args.json)
    return EXIT_OK


def cmd_segments(args: argparse.Namespace) -> int:
    """Reads the lake only: no Dagster instance (unlike _setup) and no Great Expectations import."""
    from pipelines.segments_report import segments_data, segments_json, segments_report

    lake = _local_lake(Lake(_resolved(args.data_root)) if args.data_root else Lake.default(), args.command)
    days = lake.partitions("segments", "segment_summary")
    as_of = args.date or (days[-1] if days else None)
    tables = segments_report(lake, as_of, console.width) if as_of else None
    if tables is None:
        where = f"for {as_of} " if as_of else ""
        console.print(f"[yellow]no segment summary {where}in {lake.root}[/yellow] (try `pyramid run`)")
        return 1
    if args.json:
        print(segments_json(segments_data(lake, as_of)))
        return EXIT_OK
    console.print(*tables)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Reads the reports folder only: no Dagster, no GX."""
    import webbrowser

    from assets.scorecard import report_path

    lake = _local_lake(Lake(_resolved(args.data_root)) if args.data_root else Lake.default(), args.command)
    path = report_path(lake, args.date)
    if not path.exists():
        console.print(f"[yellow]no scorecard at {path}[/yellow] (try `pyramid run`)")
        return 1
    print(path)
    if args.open:
        webbrowser.open(path.as_uri())
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    lake, map_path = _setup(args)
    m = load_map(map_path)
    console.print(
        f"[green]{map_path} is valid[/green]: North Star {m.north_star.id} ({m.north_star.metric}), "
        f"{len(m.goals)} goals, {len(m.touchpoints)} touchpoints, {len(m.campaigns)} campaigns, "
        f"{len(m.segments.definitions)} segments, partitions from {m.start_date}"
    )
    from assets.lineage import selection_warnings

    for warning in selection_warnings(m):
        errors.print(Text(f"warning: {warning}", style="yellow"))
    return EXIT_OK if _data_fits(lake, m, None, quiet=False) else EXIT_USAGE


def _data_fits(lake: Lake, pyramid_map: PyramidMap, days: list[date] | None, quiet: bool) -> bool:
    """Check the landing files against the map (assets/source_check.py); print its errors (and, unless
    `quiet`, what it found on standard error); whether there was no error."""
    from assets.source_check import check_sources

    findings = check_sources(lake, pyramid_map, days)
    for finding in [] if quiet else [f for f in findings if f.level != "error"]:
        warning = finding.level == "warning"
        line = Text(f"{finding.level if warning else 'data'}: {finding.text}", style="yellow" if warning else "")
        errors.print(line, soft_wrap=True)
    problems = [f.text for f in findings if f.level == "error"]
    if problems:
        print_error(
            errors,
            "the data does not fit the map",
            problems,
            "correct the landing files or the map's `sources`; `pyramid check` checks them again",
        )
    return not problems


def cmd_import(args: argparse.Namespace) -> int:
    lake, map_path = _setup(args)
    from pipelines.history_import import ImportRefused, import_history
    from pipelines.history_output import bytes_progress, export_files, print_import

    pyramid_map = load_map(map_path)
    files = export_files(args.files)
    if args.source not in pyramid_map.sources:
        declared = ", ".join(pyramid_map.sources)
        print_error(errors, "nothing imported", [f"the map declares no source {args.source!r}"], f"one of: {declared}")
        return EXIT_USAGE
    if not files:
        print_error(errors, "nothing imported", [f"no file matches {' '.join(args.files)}"], "name the export's files")
        return EXIT_USAGE
    try:
        with bytes_progress(console, files, f"importing {args.source}") as advance:
            source = pyramid_map.sources[args.source]
            result = import_history(lake, source, files, args.replace, advance, first_day=pyramid_map.start_date)
    except ImportRefused as err:
        print_error(errors, "nothing imported", [str(err)], err.todo)
        return err.exit_code
    print_import(console, errors, result, pyramid_map, args.source)
    return EXIT_OK


def cmd_example(args: argparse.Namespace) -> int:
    """Write the program folder, land the dataset, run its first days, print the summary
    (pipelines/examples/cdnow/example.py)."""
    from pipelines.examples.cdnow import example
    from pipelines.history_import import ImportRefused
    from pipelines.runner import run_days
    from pipelines.summary import print_summary

    try:
        program = example.prepare(args.directory)
    except (example.ExampleError, ImportRefused) as err:
        print_error(errors, "the example cannot start", [str(err)], err.todo)
        return EXIT_USAGE
    args.map, args.data_root = program.map_path, program.data_root
    lake, _ = _setup(args)
    example.print_prepared(console, program)
    days = example.days_to_run(program, args.days or example.DEFAULT_DAYS)
    if not _data_fits(lake, program.pyramid_map, days, quiet=True):
        return EXIT_USAGE
    failure = run_days(days, console, lake.root)
    if failure is not None:
        print_failure(errors, failure, lake.root / "logs", args.verbose)
        return failure.exit_code
    print_summary(lake, program.pyramid_map, console)
    example.print_next(console, program, args.directory, days[-1])
    return EXIT_OK


def cmd_init(args: argparse.Namespace) -> int:
    from pipelines.starter import StarterExists, write_starter

    try:
        layout = write_starter(args.directory, DEFAULT_MAP_PATH)
    except StarterExists as err:
        print_error(errors, "nothing written", [str(err)], "edit that map, or choose another folder")
        return EXIT_USAGE
    console.print(f"wrote {args.directory / 'pyramid.yaml'} (the sample program's map, to edit); land files as:")
    for name, pattern in layout.items():
        console.print(f"  {name:<18} {args.directory / pattern}")
    console.print(f"then: cd {args.directory} && pyramid check && pyramid run")
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    _setup(args)
    console.print(f"Dagster UI on http://127.0.0.1:{args.port} (instance: {os.environ['DAGSTER_HOME']})")
    from pipelines.process_group import run_in_own_group

    command = [sys.executable, "-m", "dagster", "dev", "-m", "pipelines.definitions", "-p", str(args.port)]
    return run_in_own_group(command, Path.cwd())


def _days_to_run(args: argparse.Namespace, lake: Lake, start: date) -> list[date]:
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
