"""`pyramid`: generate the sample, run the pyramid for a day or a range, the demo, status, the map check, the UI."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from assets.lake import as_data_root
from assets.pyramid_map import SOURCE_NAMES, MapError
from pipelines.commands import (
    cmd_check,
    cmd_demo,
    cmd_example,
    cmd_generate,
    cmd_import,
    cmd_init,
    cmd_report,
    cmd_run,
    cmd_segments,
    cmd_status,
    cmd_summary,
    cmd_ui,
    errors,
)
from pipelines.completion import SHELLS, script
from pipelines.errors import EXIT_OK, EXIT_USAGE, print_error

if TYPE_CHECKING:
    from upath import UPath

DEMO_USERS = 20_000
DEMO_DAYS = 30
MAIN_EXAMPLE = "pyramid --data-root /tmp/trial demo --users 2000 --days 4   # then: pyramid status"
GLOBAL_DEFAULTS = {"data_root": None, "map": None, "verbose": False}
EPILOG = (
    "exit codes: 0 ok, 1 a day failed, 2 an invalid map, data that does not fit it or usage, 3 a blocking check failed"
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    for name, default in GLOBAL_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    try:
        return args.handler(args)
    except MapError as err:
        trace = traceback.format_exc() if args.verbose else ""
        print_error(errors, "the map is invalid", err.problems, "correct it; `pyramid check` checks it again", trace)
        return EXIT_USAGE


def _data_root(text: str) -> Path | UPath:
    """A local folder, or an object-store URL (`s3://bucket/prefix`: `pyramid run` and `status` only)."""
    if "://" not in text:
        return Path(text)
    try:
        return as_data_root(text)  # not Path(): it would make `s3://b` a local folder `s3:/b`
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _global_options(parser: argparse.ArgumentParser, default: object) -> None:
    """--data-root, --map and --verbose, accepted before or after the subcommand."""
    parser.add_argument(
        "--data-root",
        type=_data_root,
        default=default,
        help="data root, a folder or for run and status an s3:// URL (default: ./data or $PYRAMID_DATA_ROOT)",
    )
    parser.add_argument("--map", type=Path, default=default, help="the program's map (default: ./pyramid.yaml)")
    parser.add_argument(
        "--verbose", action="store_true", default=default, help="print the trace of a failure on the terminal"
    )


def _command(
    commands: argparse._SubParsersAction,
    name: str,
    help: str,
    example: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  {example}\n\n{EPILOG}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, argparse.SUPPRESS)  # after the subcommand too; SUPPRESS keeps a value given before it
    parser.set_defaults(handler=handler)
    return parser


def _parser() -> argparse.ArgumentParser:
    epilog = f"example:\n  {MAIN_EXAMPLE}\n\n{EPILOG}"
    parser = argparse.ArgumentParser(
        prog="pyramid", description=__doc__, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _global_options(parser, argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = _command(
        commands,
        "generate",
        "write the seeded sample landing files (asks before replacing any)",
        "pyramid generate --users 50000 --days 30 --seed 7",
        cmd_generate,
    )
    _sample_options(generate)

    run = _command(
        commands,
        "run",
        "materialize the pyramid for a day or a range of days, in order",
        "pyramid run --start 2026-10-01 --end 2026-10-07",
        cmd_run,
    )
    run.add_argument("--date", type=date.fromisoformat, help="one day")
    run.add_argument("--start", type=date.fromisoformat, help="first day (default: the map's start_date)")
    run.add_argument("--end", type=date.fromisoformat, help="last day (default: the last landed day)")

    demo = _command(
        commands,
        "demo",
        "generate the sample, run every day, print the summary",
        "pyramid demo --users 2000 --days 4",
        cmd_demo,
    )
    _sample_options(demo)

    _command(
        commands,
        "status",
        "per day: landing files, materialized, stale or failed, and checks not passed",
        "pyramid status --json",
        cmd_status,
    ).add_argument("--json", action="store_true", help="print JSON")
    summary = _command(
        commands, "summary", "print the pyramid's summary from the lake", "pyramid summary --json", cmd_summary
    )
    summary.add_argument("--json", action="store_true", help="machine-readable output")
    segments = _command(
        commands,
        "segments",
        "print the segments' summary and baselines from the lake",
        "pyramid segments --date 2026-10-30",
        cmd_segments,
    )
    segments.add_argument("--date", type=date.fromisoformat, help="as-of day (default: the last one materialized)")
    segments.add_argument("--json", action="store_true", help="machine-readable output")
    report = _command(
        commands,
        "report",
        "print the scorecard's path (reports/scorecard), or open it",
        "pyramid report --open",
        cmd_report,
    )
    report.add_argument("--date", type=date.fromisoformat, help="the day's page (default: the latest)")
    report.add_argument("--open", action="store_true", help="open it in the browser")
    _command(
        commands,
        "check",
        "check the map (pyramid.yaml) and the landing files against it: found, mapped columns, first rows",
        "pyramid --map my-program.yaml check",
        cmd_check,
    )
    history = _command(
        commands,
        "import",
        "land a history export of one source into its daily landing partitions, by event time (UTC day)",
        "pyramid import transactions export/transactions-2024.csv   # then: pyramid run --start ... --end ...",
        cmd_import,
    )
    history.add_argument(
        "source", choices=SOURCE_NAMES, metavar="SOURCE", help=f"the export's source: {', '.join(SOURCE_NAMES)}"
    )
    history.add_argument(
        "files",
        nargs="+",
        metavar="FILE_OR_GLOB",
        help="the export's files, in the source's format (globs are expanded); records without an event time "
        "are kept under <data root>/import/",
    )
    history.add_argument("--replace", action="store_true", help="replace the landing files of days already landed")
    example = _command(
        commands,
        "example",
        "a real dataset end to end: CDNOW's purchases (Fader & Hardie, from the lifetimes package), A/A campaigns",
        "pyramid example cdnow /tmp/cdnow --days 7",
        cmd_example,
    )
    example.add_argument("name", choices=["cdnow"], help="the example: cdnow")
    example.add_argument("directory", type=Path, nargs="?", default=Path("cdnow"), help="program folder (./cdnow)")
    example.add_argument("--days", type=_positive, default=None, help="days to run from 1997-01-01 (default 7)")
    _command(
        commands,
        "init",
        "write a starter program folder: a commented map and the landing layout",
        "pyramid init my-program",
        cmd_init,
    ).add_argument("directory", type=Path, help="the folder to write (created if missing)")
    ui = _command(commands, "ui", "start the Dagster UI on this project's instance", "pyramid ui --port 3001", cmd_ui)
    ui.add_argument("--port", type=int, default=3000)
    completion = _command(
        commands,
        "completion",
        "print a shell completion script for bash or zsh",
        'eval "$(pyramid completion bash)"   # in ~/.bashrc',
        cmd_completion,
    )
    completion.add_argument("shell", choices=SHELLS)
    return parser


def _sample_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=DEMO_USERS)
    parser.add_argument("--days", type=int, default=DEMO_DAYS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--effect",
        type=_effect,
        action="append",
        default=[],
        metavar="CAMPAIGN=LIFT",
        help="plant a relative effect on a campaign's goal metric, e.g. savings_nudge=0.2 (repeatable; "
        "the other campaigns keep the sample's planted effects)",
    )
    parser.add_argument("--yes", action="store_true", help="replace existing data without asking")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, at least 1, got {text!r}")
    return int(text)


def _effect(text: str) -> tuple[str, float]:
    """`CAMPAIGN=LIFT` -> (campaign id, relative lift)."""
    campaign, _, lift = text.partition("=")
    try:
        return campaign.strip(), float(lift)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CAMPAIGN=LIFT (a number, e.g. 0.2), got {text!r}") from None


def cmd_completion(args: argparse.Namespace) -> int:
    print(script(_parser(), args.shell), end="")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
