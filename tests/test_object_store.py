"""The data root on an object store: the whole pyramid on `s3://bucket/root`, served by a local moto server,
writes the same tables as on a local disk; a failed write leaves no object behind; and the operator's
`pyramid run` and `pyramid status` work on such a root, with their locks and logs on the local disk."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
from datetime import timedelta
from pathlib import Path
from unittest import mock

import dagster as dg
import pytest

from assets.lake import Lake, as_data_root, atomic_path, connect, write_text_atomic
from assets.pyramid_map import load_map
from pipelines.cli import main
from pipelines.definitions import NIGHTLY_JOB, build_definitions
from pipelines.resources import PyramidResource
from pipelines.runner import QUIET
from pipelines.sample.generate import generate_sample

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

USERS, DAYS, SEED = 300, 2, 11  # day 2 has erasure requests: the rewrite path runs on S3 too
BUCKET = "pyramid-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A local S3 (moto) on a free port, with the standard AWS variables pointing at it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        env.setenv("PYRAMID_LOCAL_ROOT", str(tmp_path_factory.mktemp("local_part")))
        root = as_data_root(f"s3://{BUCKET}/root")
        root.fs.mkdir(BUCKET)
        yield root
    server.stop()


def test_a_failed_write_leaves_no_object_and_a_finished_one_is_whole(s3):
    target = s3 / "reports" / "page.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as staged:
        staged.write_text("half")
        raise RuntimeError("writer failed")
    assert not target.exists()
    assert write_text_atomic("whole", target).read_text() == "whole"
    with pytest.raises(RuntimeError), atomic_path(target) as staged:
        staged.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "whole"
    assert [p.name for p in target.parent.iterdir()] == ["page.txt"]


def test_an_unsupported_url_root_is_refused_by_name():
    with pytest.raises(ValueError, match="not supported yet: gs://"):
        as_data_root("gs://bucket/root")


def test_the_pyramid_on_s3_writes_the_same_tables_as_on_local_disk(s3, tmp_path_factory):
    pyramid_map = load_map()
    local = tmp_path_factory.mktemp("local_root")
    generate_sample(local / "landing", users=USERS, days=DAYS, seed=SEED, pyramid_map=pyramid_map)
    s3.fs.put(str(local / "landing"), (s3 / "landing").path, recursive=True)
    days = [pyramid_map.start_date + timedelta(days=n) for n in range(DAYS)]
    for root in (str(local), str(s3)):
        _run(pyramid_map, root, days)
    remote = Lake(s3)
    tables = _tables(Lake(local))
    assert len(tables) > 20 and _tables(remote) == tables
    for layer, table in tables:
        assert _rows(remote, layer, table) == _rows(Lake(local), layer, table), f"{layer}/{table}"
    assert remote.warehouse.parent == Path(os.environ["PYRAMID_LOCAL_ROOT"])
    catalog = connect(str(remote.warehouse), read_only=True)  # local, with views over s3:// globs
    assert catalog.sql("SELECT count(*) FROM north_star").fetchall() == [(len(_rows(remote, "goals", "north_star")),)]


def _run(pyramid_map, root: str, days) -> None:
    defs = build_definitions(pyramid_map, PyramidResource(data_root=root))
    job = defs.resolve_job_def(NIGHTLY_JOB)
    instance = dg.DagsterInstance.ephemeral()  # in memory: half the run time of a SQLite one, here
    for day in days:
        assert job.execute_in_process(partition_key=day.isoformat(), instance=instance, run_config=QUIET).success


def _tables(lake: Lake) -> list[tuple[str, str]]:
    files = (lake.root / "lake").glob("*/*/ds=*/part-0.parquet")
    return sorted({(p.parent.parent.parent.name, p.parent.parent.name) for p in files})


def _rows(lake: Lake, layer: str, table: str) -> list[tuple]:
    """Every row of every partition, in a stable order (columns by name, Bloom filters and file bytes aside)."""
    relation = connect().sql(f"SELECT * FROM read_parquet('{lake.glob(layer, table)}', union_by_name = true)")
    columns = sorted(relation.columns)  # `_source_file` is relative to the data root: the same on both
    return sorted(relation.select(*columns).fetchall(), key=repr)


def test_pyramid_run_and_status_work_on_an_s3_root_and_other_commands_refuse_it(s3, tmp_path, monkeypatch):
    pyramid_map = load_map()
    days = [pyramid_map.start_date + timedelta(days=n) for n in range(2)]
    generate_sample(tmp_path / "landing", users=USERS, days=2, seed=SEED, pyramid_map=pyramid_map)
    root = as_data_root(f"s3://{BUCKET}/cli")  # its own prefix: not the lake of the test above
    s3.fs.put(str(tmp_path / "landing"), (root / "landing").path, recursive=True)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    for name in ("PYRAMID_DATA_ROOT", "PYRAMID_MAP"):
        monkeypatch.delenv(name, raising=False)

    code, _, err = _cli("--data-root", str(root), "run", "--date", days[0].isoformat())
    assert code == 0, err
    code, out, _ = _cli("--data-root", str(root), "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["data_root"] == str(root)
    states = [(d["day"], d["state"]) for d in status["days"]]
    assert states == [(days[0].isoformat(), "ok"), (days[1].isoformat(), "not run")]
    assert status["last_run"]["status"] == "SUCCESS"
    events = (tmp_path / "landing" / "events" / days[1].isoformat()).glob("*")
    assert status["days"][1]["landing"]["events"]["rows"] == sum(len(p.read_text().splitlines()) for p in events)
    assert Lake(root).partitions("goals", "north_star") == [days[0]]
    locks = Path(os.environ["PYRAMID_LOCAL_ROOT"]) / ".locks"
    assert locks.is_dir() and not any(locks.iterdir()) and not (root / ".locks").exists()  # taken here, released

    for command in ("generate", "segments", "check"):
        code, _, err = _cli("--data-root", str(root), command)
        assert code == 2 and f"not supported yet: pyramid {command}" in " ".join(err.split()), err


def _cli(*argv: str) -> tuple[int, str, str]:
    """`pyramid argv...` in this process: its exit code, standard output and standard error (tests/test_cli.py)."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue(), err.getvalue()
