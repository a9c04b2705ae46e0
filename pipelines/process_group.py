"""Run a child command in a process group of its own, and take the whole group down with us.

`dagster dev` starts a webserver, a daemon and code servers. Started in its own session, the group is
ours to signal: SIGINT and SIGTERM sent to `pyramid ui` are forwarded to the group, and we wait for it.
Whatever is still running after a grace period is killed, so nothing outlives the command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from types import FrameType

FORWARDED = (signal.SIGINT, signal.SIGTERM)
GRACE_SECONDS = 20.0


def run_in_own_group(command: list[str], cwd: Path, grace: float = GRACE_SECONDS) -> int:
    """Run `command` until it exits or we are signalled; return its exit code (128 + signal when stopped).
    A leader still running `grace` seconds after a forwarded signal is stopped with the rest of its group."""
    child = subprocess.Popen(command, cwd=cwd, start_new_session=True)
    received: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        _signal_group(child.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        code = _wait(child, received, grace)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_group(child, grace)
    return 128 + received[0] if received else code


def _wait(child: subprocess.Popen, received: list[int], grace: float) -> int:
    """The leader's exit code; after a forwarded signal, at most `grace` seconds (then -1: it did not stop)."""
    signalled_at = None
    while True:
        try:
            return child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if received and signalled_at is None:
                signalled_at = time.monotonic()
            if signalled_at is not None and time.monotonic() - signalled_at > grace:
                return -1


def _stop_group(child: subprocess.Popen, grace: float) -> None:
    """The leader has exited (or would not): ask the rest of its group to stop, then make sure."""
    if _group_alive(child.pid):
        _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _group_alive(child.pid) and time.monotonic() < deadline:
            child.poll()  # reaps the leader once it exits
            time.sleep(0.1)
        _signal_group(child.pid, signal.SIGKILL)
    child.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass
