"""What the operator sees when something goes wrong: one short block, the trace only on request.

Exit codes (README, "Using it"): 0 ok, 1 a day failed, 2 an invalid map or usage, 3 a blocking check
failed. An expected failure (bad input, a missing file, an invalid map, a blocked check) prints the day,
the step, the cause and what to do; its trace goes to a log file whose path is printed, and to the
terminal with `--verbose`. Any other exception is a bug: its trace is always printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:  # pragma: no cover - typing only; dagster is slow to import
    import dagster as dg
    from dagster_shared.error import SerializableErrorInfo

EXIT_OK, EXIT_DAY_FAILED, EXIT_USAGE, EXIT_BLOCKED = 0, 1, 2, 3
BLOCKED_CHECK = "DagsterAssetCheckFailedError"

# cause (exception class name) -> what to do; {day} is the failed day
EXPECTED = {
    "LandingError": "fix the landing file (or the source's `columns` in the map), then `pyramid run --date {day}`",
    "DayRefused": "fix the landing file (or the source's `columns` in the map), then `pyramid run --date {day}`",
    "MissingPartition": "materialize the earlier days first, in order: `pyramid run --end {day}`",
    "MapError": "correct the map (`pyramid check` explains it), then `pyramid run --date {day}`",
    "UnsafeExpression": "correct the rule in the map (`pyramid check`), then `pyramid run --date {day}`",
    "SuiteError": "correct the expectation suite in expectations/, then `pyramid run --date {day}`",
    "QualityError": "compare the expectation suite with the source's columns, then `pyramid run --date {day}`",
    "AccountingError": "rows went missing between layers: keep the log and report it",
    "RunLocked": "wait for that run to finish (a lock left by a process that died is taken over), then run again",
    BLOCKED_CHECK: "see the check in `pyramid status` or the Dagster UI, fix the data, then `pyramid run --date {day}`",
}


@dataclass(frozen=True)
class Failure:
    """One failed step of one day's run, ready to be shown to an operator."""

    day: date | None
    step: str | None
    cls_name: str
    cause: str
    trace: str
    others: tuple[str, ...] = ()

    @property
    def expected(self) -> bool:
        return self.cls_name in EXPECTED

    @property
    def exit_code(self) -> int:
        if self.cls_name == BLOCKED_CHECK:
            return EXIT_BLOCKED
        return EXIT_USAGE if self.cls_name in ("MapError", "UnsafeExpression") else EXIT_DAY_FAILED

    @property
    def todo(self) -> str:
        default = "this is a bug in the pipeline: keep the log and report it"
        return EXPECTED.get(self.cls_name, default).format(day=self.day)


def step_failures(result: dg.ExecuteInProcessResult, day: date) -> list[Failure]:
    """Every failed step of an `ExecuteInProcessResult`, in the order they failed; a step stopped only
    because another source's file is faulty (DayRefused) after the step of that source."""
    failures = [event for event in result.all_events if event.is_step_failure]
    found = [_failure(event.step_key, event.step_failure_data.error, day) for event in failures]
    found.sort(key=lambda f: f.cls_name == "DayRefused")
    blocked = [e for e in result.get_asset_check_evaluations() if not e.passed and e.blocking]
    found = [_with_checks(f, blocked) if f.cls_name == BLOCKED_CHECK else f for f in found]
    steps = tuple(f.step for f in found if f.step)
    return [Failure(f.day, f.step, f.cls_name, f.cause, f.trace, tuple(s for s in steps if s != f.step)) for f in found]


def _failure(step: str | None, error: SerializableErrorInfo | None, day: date) -> Failure:
    root = error
    while root is not None and root.cause is not None and root.cls_name != BLOCKED_CHECK:
        root = root.cause
    cls_name = root.cls_name if root else "UnknownError"
    return Failure(
        day, step, cls_name, plain_message(root.message if root else "", cls_name), error.to_string() if error else ""
    )


def _with_checks(failure: Failure, blocked: list) -> Failure:
    """A blocked step's cause names each failed check and its own description."""
    own = [e for e in blocked if e.asset_key.to_user_string() == failure.step] or blocked
    checks = [
        f"{e.asset_key.to_user_string()} {e.check_name}" + (f" ({e.description})" if e.description else "") for e in own
    ]
    cause = "blocking check failed: " + "; ".join(checks) if checks else failure.cause
    return Failure(failure.day, failure.step, failure.cls_name, cause, failure.trace)


def plain_message(message: str, cls_name: str) -> str:
    """`assets.landing.LandingError: text` -> `text`; the class name says nothing to an operator."""
    head, sep, rest = message.partition(": ")
    text = rest if sep and head.split(".")[-1] == cls_name else message
    return " ".join(text.split())


def print_failure(console: Console, failure: Failure, log_dir: Path | None, verbose: bool) -> None:
    """The short block; the trace on the terminal with --verbose or for a bug, else in a log file."""
    head = "error: the pyramid failed" + (f" for {failure.day}" if failure.day else "")
    head += f" at step {failure.step}" if failure.step else ""
    lines = [head, f"  cause: {failure.cause}", f"  to do: {failure.todo}"]
    if failure.others:
        lines.append(f"  also failed: {', '.join(failure.others)}")
    log = _write_log(log_dir, failure) if log_dir and failure.trace else None
    if log is not None:
        lines.append(f"  trace: {log}" + ("" if verbose or not failure.expected else " (or run with --verbose)"))
    if failure.day:
        lines.append("  nothing after the failed step was written.")
    _print_plain(console, "\n".join(lines))
    if failure.trace and (verbose or not failure.expected):
        _print_plain(console, failure.trace.rstrip())


def print_error(console: Console, what: str, causes: list[str], todo: str, trace: str = "") -> None:
    """The short block for a failure outside a run (an invalid map); the trace only when given."""
    lines = [
        f"error: {what}",
        *(f"  {'cause:' if n == 0 else '      '} {c}" for n, c in enumerate(causes)),
        f"  to do: {todo}",
    ]
    _print_plain(console, "\n".join(lines))
    if trace:
        _print_plain(console, trace.rstrip())


def _write_log(log_dir: Path, failure: Failure) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{failure.day or 'pyramid'}-{failure.step or 'error'}.log"
    path.write_text(failure.trace)
    return path


def _print_plain(console: Console, text: str) -> None:
    console.print(Text(text), soft_wrap=True, highlight=False)
