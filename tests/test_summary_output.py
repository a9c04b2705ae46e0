"""`pyramid summary` and `pyramid segments` fit 80 and 120 columns without cutting a name; --json parses."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from pipelines.cli import main
from pipelines.segments_report import segments_report
from pipelines.summary import print_summary


def _render(width: int, draw) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    draw(console)
    return console.file.getvalue()


def _assert_fits(out: str, width: int, names: list[str]) -> None:
    assert "…" not in out
    assert max(len(line) for line in out.splitlines()) <= width
    words = set(re.findall(r"[\w.]+", out))
    missing = [n for n in names if n not in words]
    assert not missing, f"names cut or missing at {width} columns: {missing}"


@pytest.mark.parametrize("width", [80, 120])
def test_summary_fits(run, width):
    out = _render(width, lambda c: print_summary(run.lake, run.pyramid_map, c))
    names = [s.id for s in run.pyramid_map.segments.definitions] + [g.id for g in run.pyramid_map.goals]
    _assert_fits(out, width, names + [g.metric for g in run.pyramid_map.goals])


@pytest.mark.parametrize("width", [80, 120])
def test_segments_fits(run, width):
    tables = segments_report(run.lake, run.days[-1], width)
    out = _render(width, lambda c: c.print(*tables))
    from pipelines.layers.segments import baseline_metrics

    metrics = {m.id for m in baseline_metrics(run.pyramid_map)}  # a time to event has no per-segment baseline
    assert metrics and "time_to_first_deposit" not in metrics
    _assert_fits(out, width, [s.id for s in run.pyramid_map.segments.definitions] + sorted(metrics))


def test_json_outputs_parse(run, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PYRAMID_DATA_ROOT", str(run.lake.root))  # the CLI points the environment at its root
    monkeypatch.setenv("PYRAMID_MAP", str(run.pyramid_map.path))  # and at its map: both restored after
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert main(["--data-root", str(run.lake.root), "segments", "--json"]) == 0
    segments = json.loads(capsys.readouterr().out)
    assert segments["as_of"] == run.days[-1].isoformat()
    assert {r["segment_id"] for r in segments["segments"]} == {s.id for s in run.pyramid_map.segments.definitions}
    assert main(["--data-root", str(run.lake.root), "summary", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {g["goal_id"] for g in summary["goals"]} == {g.id for g in run.pyramid_map.goals}
    assert [r["layer"] for r in summary["layers"]][0] == "raw data"
    assert len(summary["north_star"]["series"]) == len(run.days)
