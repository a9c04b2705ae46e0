"""One run per day and data root: a lock file that holds the running process's id.

`day_lock(root, day)` creates `<root>/.locks/run-<day>.lock` exclusively (O_CREAT | O_EXCL) and writes
the process id into it; it removes the file when the block ends. A second run of the same day meets the
file and is refused with `RunLocked`, naming the day, the process and the lock file. A lock whose process
no longer exists (a run killed with SIGKILL or by a power cut never removes its lock) is stale: it is
taken over. The check is by process id on this machine; runs on several machines need a shared lock
(for example Dagster's run queue with a concurrency limit per partition), which this does not provide.

On an object-store root (`s3://...`) the lock files, like the logs, live on this machine's disk, under
`local_root()` (`$PYRAMID_LOCAL_ROOT`): S3 has no exclusive create to build a lock on, so two machines sharing
a bucket are not kept apart by these locks (docs/scaling.md, "Object store").

Runs launched from the Dagster UI do not pass through here; `pyramid run` and the demo do.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from assets.lake import local_folder

if TYPE_CHECKING:
    from upath import UPath


class RunLocked(RuntimeError):
    """Another live process is running the same day on the same data root."""


def lock_path(root: Path | UPath, day: date) -> Path:
    return local_folder(root) / ".locks" / f"run-{day.isoformat()}.lock"


def _holder(path: Path) -> int | None:
    """The pid written in a lock file (None when unreadable or half-written)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


FRESH_SECONDS = 5.0  # a lock file without a pid yet is being written by its creator for at most this long


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return FRESH_SECONDS


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def acquire(root: Path | UPath, day: date) -> Path:
    """Take the day's lock for this process; RunLocked when a live process holds it."""
    path = lock_path(root, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pid = _holder(path)
            if pid is None and _age_seconds(path) < FRESH_SECONDS:
                raise RunLocked(f"{day} is being started on {root} by another process (lock {path})") from None
            if pid is not None and pid != os.getpid() and _alive(pid):
                raise RunLocked(
                    f"{day} is already being run on {root} by process {pid} (lock {path}); wait for that run "
                    f"to finish. If no such run exists, remove the lock file and run again."
                ) from None
            path.unlink(missing_ok=True)  # stale: its process is gone (or it is ours, left by a crash)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        return path
    raise RunLocked(f"could not take the lock {path} for {day}: other processes keep creating it")


def release(path: Path) -> None:
    """Remove the lock if this process still holds it."""
    if _holder(path) == os.getpid():
        path.unlink(missing_ok=True)


@contextmanager
def day_lock(root: Path | UPath, day: date) -> Iterator[Path]:
    """Hold the lock of `day` on `root` for the block (see the module docstring)."""
    path = acquire(root, day)
    try:
        yield path
    finally:
        release(path)


def hold_days(root: Path | UPath, days: list[date]) -> ExitStack:
    """The locks of every day of a run, taken now (RunLocked, and none held, when one is taken);
    use the result as a context manager that releases them."""
    stack = ExitStack()
    try:
        for day in days:
            stack.enter_context(day_lock(root, day))
    except BaseException:
        stack.close()
        raise
    return stack
