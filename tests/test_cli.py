"""The operator's command line: short error blocks and exit codes, confirmation before removing data,
`pyramid ui` leaving no process behind, and `pyramid status` on a lake with a stale, a failed and a
missing day. One small run of the CLI (300 users, days 1-2 of 4) is shared by the module."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest

from assets.lake import PROJECT_ROOT, Lake
from assets.pyramid_map import DEFAULT_MAP_PATH, load_map
from pipelines.cli import main
from pipelines.safety import holds_only_a_sample, write_marker
from pipelines.sample.generate import generate_sample

USERS, DAYS, SEED = 300, 4, 7
EXPECTED_COLUMNS = "txn_id, user_id, occurred_at, amount, currency, txn_type, merchant_category, status"
FOUND_COLUMNS = "txn_id, user_id, occurred_at, amt, currency, txn_type, merchant_category, status"


def cli(*argv: str) -> tuple[int, str, str]:
    """Run `pyramid argv...` in this process; its exit code, standard output and standard error.
    The environment is restored after it (the CLI points the code location at --data-root and --map)."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def pyramid_map():
    return load_map()


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory, pyramid_map):
    """Day 2's transactions lost their `amount` column upstream, day 4 has no events; `pyramid run` days 1-2."""
    root = tmp_path_factory.mktemp("cli")
    days = [pyramid_map.start_date + timedelta(days=n) for n in range(DAYS)]
    generate_sample(root / "landing", users=USERS, days=DAYS, seed=SEED, pyramid_map=pyramid_map)
    broken = root / "landing" / "transactions" / days[1].isoformat() / "transactions-0.csv"
    header, rest = broken.read_text().split("\n", 1)
    broken.write_text(header.replace(",amount,", ",amt,") + "\n" + rest)
    shutil.rmtree(root / "landing" / "events" / days[3].isoformat())
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        env.setenv("COLUMNS", "100")
        for name in ("PYRAMID_DATA_ROOT", "PYRAMID_MAP"):
            env.delenv(name, raising=False)
        code, out, err = cli("--data-root", str(root), "run", "--end", days[1].isoformat())
        yield {"root": root, "days": days, "broken": broken, "code": code, "out": out, "err": err}


def error_block(root: Path, broken: Path, day, verbose: bool) -> str:
    hint = "" if verbose else " (or run with --verbose)"
    return (
        f"error: the pyramid failed for {day} at step raw_transactions\n"
        f"  cause: {broken}: CSV header lacks 'amount'; expected columns for source 'transactions': "
        f"{EXPECTED_COLUMNS}; found: {FOUND_COLUMNS}; unexpected: 'amt' (renamed upstream? map the source's name "
        "to the canonical one under `columns` of the source in pyramid.yaml, or ask the sender for the contract's "
        "names)\n"
        f"  to do: fix the landing file (or the source's `columns` in the map), then `pyramid run --date {day}`\n"
        # a file fault stops every raw step of the day; the faulty source's own step is shown
        "  also failed: raw_erasure_requests, raw_events, raw_profiles\n"
        f"  trace: {root}/logs/{day}-raw_transactions.log{hint}\n"
        f"  nothing after the failed step was written.\n"
    )


def test_a_renamed_column_prints_one_short_block_and_exits_1(failed_run):
    root, days = failed_run["root"], failed_run["days"]
    assert failed_run["code"] == 1
    assert failed_run["err"] == error_block(root, failed_run["broken"], days[1], verbose=False)
    assert [line.split()[:2] for line in failed_run["out"].splitlines()] == [["ok", str(days[0])]]
    trace = (root / "logs" / f"{days[1]}-raw_transactions.log").read_text()
    assert "raise LandingError(" in trace and 'File "' in trace


def test_verbose_after_the_subcommand_prints_the_trace(failed_run):
    root, days = failed_run["root"], failed_run["days"]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        code, out, err = cli("run", "--date", str(days[1]), "--verbose", "--data-root", str(root))
    trace = (root / "logs" / f"{days[1]}-raw_transactions.log").read_text()
    assert code == 1 and out == ""
    assert err == error_block(root, failed_run["broken"], days[1], verbose=True) + trace.rstrip() + "\n"
    assert "raise LandingError(" in err


def test_an_invalid_map_exits_2_with_its_problems(tmp_path):
    bad = tmp_path / "pyramid.yaml"
    bad.write_text("program: [unclosed\n")
    code, out, err = cli("check", "--map", str(bad))
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == "error: the map is invalid" and lines[1].startswith(f"  cause: {bad}")
    assert lines[-1] == "  to do: correct it; `pyramid check` checks it again" and "Traceback" not in err


def test_commands_use_the_map_and_data_of_the_folder_they_run_in(tmp_path, monkeypatch):
    for name in ("PYRAMID_DATA_ROOT", "PYRAMID_MAP", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("check")
    assert code == 2 and f"{tmp_path / 'pyramid.yaml'}: no such file" in err and str(DEFAULT_MAP_PATH) in err
    shutil.copy(DEFAULT_MAP_PATH, tmp_path / "pyramid.yaml")
    code, out, _ = cli("check")
    assert code == 0 and f"{tmp_path / 'pyramid.yaml'} is valid" in " ".join(out.split())
    code, _, _ = cli("generate", "--users", "50", "--days", "1", "--yes")
    assert code == 0 and (tmp_path / "data" / "landing" / "events").is_dir()
    assert (tmp_path / ".dagster" / "dagster.yaml").is_file()


def test_init_writes_a_starter_folder_that_checks_and_never_overwrites(tmp_path, monkeypatch):
    for name in ("PYRAMID_DATA_ROOT", "PYRAMID_MAP", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("init", "program")
    assert code == 0, out
    assert sorted(p.name for p in (tmp_path / "program" / "data" / "landing").iterdir()) == sorted(load_map().sources)
    assert "program/data/landing/events/YYYY-MM-DD/*.jsonl" in out
    assert (tmp_path / "program" / "pyramid.yaml").read_text().endswith(DEFAULT_MAP_PATH.read_text())
    monkeypatch.chdir(tmp_path / "program")
    assert cli("check")[0] == 0
    edited = (tmp_path / "program" / "pyramid.yaml").read_text() + "# mine\n"
    (tmp_path / "program" / "pyramid.yaml").write_text(edited)
    code, _, err = cli("init", ".")
    assert code == 2 and "already exists; init never overwrites a map" in err
    assert (tmp_path / "program" / "pyramid.yaml").read_text() == edited


def test_generate_falls_back_to_the_sample_map_in_a_folder_without_one(tmp_path, monkeypatch):
    for name in ("PYRAMID_DATA_ROOT", "PYRAMID_MAP", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("generate", "--users", "50", "--days", "1", "--yes")
    assert code == 0 and (tmp_path / "data" / "landing" / "_truth" / "planted_truth.json").is_file(), out


def test_status_shows_the_stale_the_failed_and_the_missing_day(failed_run, pyramid_map):
    root, days = failed_run["root"], failed_run["days"]
    landed_later = root / "landing" / "events" / days[0].isoformat() / "events-0.jsonl"
    os.utime(landed_later, (time.time() + 60, time.time() + 60))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        env.setenv("COLUMNS", "100")
        code, out, err = cli("--data-root", str(root), "status")
        json_code, json_out, _ = cli("--data-root", str(root), "status", "--json")
    rows = {day: [_data_lines(root, pyramid_map, source, day) for source in pyramid_map.sources] for day in days}
    counts = {day: "  ".join(f"{r:>{w}}" for r, w in zip(rows[day], (7, 8, 12, 7))) for day in days}
    cause = (
        f"{failed_run['broken']}: CSV header lacks 'amount'; expected columns for source 'transactions': "
        f"{EXPECTED_COLUMNS}; found: {FOUND_COLUMNS}; unexpected: 'amt' (renamed upstream? map the source's name "
        "to the canonical one under `columns` of the source in pyramid.yaml, or ask the sender for the contract's "
        "names)"
    )
    table = [
        f"{days[0]}  {counts[days[0]]}  stale     events landing changed after the run",
        f"{days[1]}  {counts[days[1]]}  failed    raw_transactions: {cause}",
        f"{days[2]}  {counts[days[2]]}  not run   landed, not materialized",
        f"{days[3]}  {counts[days[3]]}  missing   no events landed",
    ]
    last = [f"  {severity:<6} {asset} {check}" for asset, check, severity in _checks_not_passed_last(root)]
    assert code == 0 and err == ""
    assert (
        out
        == "\n".join(
            [
                f"data root {root}",
                f"map       {pyramid_map.path}",
                "",
                "day          events  profiles  transactions  erasure  state     note",
                *(line if len(line) <= 100 else line[:99] + "…" for line in table),
                "4 days: 1 stale, 1 failed, 1 not run, 1 missing",
                "",
                f"last run: {days[1]}, failed",
                f"  failed raw_transactions: {cause}",
                "  also stopped (the day is refused): raw_erasure_requests, raw_events, raw_profiles",
                *last,
            ]
        )
        + "\n"
    )
    status = json.loads(json_out)
    assert json_code == 0 and [d["state"] for d in status["days"]] == ["stale", "failed", "not run", "missing"]
    assert status["days"][3]["landing"]["events"] == {"files": 0, "rows": 0}
    failed = status["days"][1]["failed_steps"]
    assert failed[0] == {"step": "raw_transactions", "error": "LandingError", "cause": cause}
    assert sorted(s["step"] for s in failed[1:]) == ["raw_erasure_requests", "raw_events", "raw_profiles"]
    assert {s["error"] for s in failed[1:]} == {"DayRefused"}


def _data_lines(root: Path, pyramid_map, source: str, day) -> str:
    """Rows of the day's landing files, read in full (the status counts newlines): 'missing' when none."""
    files = sorted(root.glob(pyramid_map.sources[source].path.format(ds=day.isoformat())))
    if not files:
        return "missing"
    header = pyramid_map.sources[source].format == "csv"
    return f"{sum(len(f.read_text().splitlines()) - header for f in files):,}"


def _checks_not_passed_last(root: Path) -> list[tuple[str, str, str]]:
    """The checks that did not pass in the instance's latest run, read through Dagster's own API."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(root / "dagster_home"))
    last = instance.get_runs(limit=1)[0]  # the newest first
    events = instance.all_logs(last.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [e.dagster_event.event_specific_data for e in events]
    return sorted(
        (e.asset_key.to_user_string(), e.check_name, e.severity.value.lower()) for e in evaluations if not e.passed
    )


# --- safe with data ------------------------------------------------------------------------------


def test_demo_refuses_to_replace_landed_files_without_yes_on_a_non_terminal(tmp_path, monkeypatch):
    own = tmp_path / "landing" / "events" / "2026-10-01" / "mine.jsonl"
    own.parent.mkdir(parents=True)
    own.write_text('{"event_id": "e1"}\n')
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, out, err = cli("demo", "--data-root", str(tmp_path), "--users", "300", "--days", "2")
    assert (code, out) == (2, "")
    assert err == (
        f"this removes:\n  {tmp_path}/landing/events  (1 file)\n"
        "refused: standard input is not a terminal, so nobody can confirm; "
        "run again with --yes to remove them\n"
    )
    assert own.read_text() == '{"event_id": "e1"}\n'


def test_only_an_unchanged_generated_sample_counts_as_replaceable(tmp_path, pyramid_map):
    lake = Lake(tmp_path)
    assert holds_only_a_sample(lake)  # nothing there
    generate_sample(lake.landing, users=USERS, days=1, seed=SEED, pyramid_map=pyramid_map)
    assert not holds_only_a_sample(lake)  # landing files with no marker: somebody's own
    write_marker(lake)
    assert holds_only_a_sample(lake)
    table = lake.partition_file("raw", "events", pyramid_map.start_date)
    table.parent.mkdir(parents=True)
    table.write_bytes(b"built before the sample")
    os.utime(table, (0, 0))
    assert not holds_only_a_sample(lake)  # a lake older than the sample was built from something else
    table.unlink()
    (lake.landing / "events" / "extra.jsonl").write_text("{}\n")
    assert not holds_only_a_sample(lake)


# --- pyramid ui ----------------------------------------------------------------------------------


def test_ui_stopped_with_sigterm_leaves_no_process(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "PYRAMID_DATA_ROOT": str(tmp_path),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    ui = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, ui, timeout=180)
        started = _descendants(ui.pid)
        assert len(started) >= 2  # dagster dev, its webserver (and daemon, code server)
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=120) == 128 + signal.SIGTERM  # dagster dev stops its children first; slow under load
        deadline = time.monotonic() + 10
        while _alive(started) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _alive(started) == []
    finally:
        if ui.poll() is None:
            ui.kill()


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "pyramid ui exited early"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                time.sleep(2)  # let the webserver's code server come up too
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listened on port {port} within {timeout}s")


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process, from /proc (psutil is not installed)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _descendants(pid: int) -> list[int]:
    parents, found, frontier = _parents(), [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _alive(pids: list[int]) -> list[int]:
    """The pids still running (a zombie has exited: it only waits for its parent to reap it)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def test_generate_plants_the_given_effects(tmp_path):
    code, out, _ = cli(
        "--data-root",
        str(tmp_path),
        "generate",
        "--users",
        "200",
        "--days",
        "2",
        "--yes",
        "--effect",
        "budget_tips=0.3",
        "--effect",
        "savings_nudge=-0.1",
    )
    assert code == 0, out
    truth = json.loads((tmp_path / "landing" / "_truth" / "planted_truth.json").read_text())
    effects = {cid: c["relative_effect"] for cid, c in truth["campaigns"].items()}
    assert (effects["budget_tips"], effects["savings_nudge"], effects["card_cashback"]) == (0.3, -0.1, 0.15)


def test_generate_refuses_effects_that_do_not_fit_the_map(tmp_path):
    code, _, err = cli("--data-root", str(tmp_path), "generate", "--effect", "no_such_campaign=0.2", "--yes")
    assert code == 2 and "no_such_campaign" in err and not (tmp_path / "landing").exists()
