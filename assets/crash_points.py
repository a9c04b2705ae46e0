"""Test-only crash points: `crash_point(name)` kills this process with SIGKILL when the environment
variable PYRAMID_TEST_KILL_AT equals `name` (tests/test_crashes.py proves that a run killed there and
run again writes what an uninterrupted run writes). Unset, as in every real run, it does nothing.

Points: `landing` (after a raw partition is written), `validation` (after a validation result is
saved), `segments` (after segment membership is written), `catalog` (the new catalog built under its
temporary name, before the rename)."""

from __future__ import annotations

import os
import signal

KILL_AT_ENV = "PYRAMID_TEST_KILL_AT"


def crash_point(name: str) -> None:
    """SIGKILL this process here when PYRAMID_TEST_KILL_AT names this point (tests only)."""
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
