"""`pyramid ui`'s process group (pipelines/process_group.py): a signal stops the command promptly, even when
the child it runs ignores the signal, and nothing it started outlives it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(600)"
)
RUNNER = (
    "import sys; from pathlib import Path; from pipelines.process_group import run_in_own_group; "
    f"sys.exit(run_in_own_group([sys.executable, '-c', {STUBBORN!r}], Path('.'), grace=1.0))"
)


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    runner = subprocess.Popen([sys.executable, "-c", RUNNER], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout.readline().strip() == "up"  # the child is running and ignores SIGTERM
        started = time.monotonic()
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=30) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 10  # two grace periods of 1 s, not the child's 600 s
        children = subprocess.run(["pgrep", "-f", "signal.SIG_IGN"], capture_output=True, text=True).stdout.split()
        assert children == []
    finally:
        if runner.poll() is None:
            runner.kill()
