"""The scorecard of the small run (fixture `run`): written every day, self-contained, and rendered by a
real headless Chromium with every goal, segment and chart present and no blank chart."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from PIL import Image

from assets import scorecard
from assets.lake import connect

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
CELL_W, CELL_H = 660, 520  # one chart per cell when each chart is screenshotted alone
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")


def _chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / "profile"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def _page(run) -> str:
    return scorecard.report_path(run.lake).read_text()


def test_a_page_per_day_and_index_is_the_latest(run):
    for day in run.days:
        assert scorecard.report_path(run.lake, day).exists()
    assert _page(run) == scorecard.report_path(run.lake, run.days[-1]).read_text()


def test_the_page_loads_without_network(run):
    """No external URL: nothing in src/href/url(), no @import, no script."""
    page = _page(run)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", page, re.I)
    assert "@import" not in page and "<script" not in page.lower() and "<link" not in page.lower()
    assert "<!DOCTYPE svg" not in page and "<?xml" not in page


def test_no_user_ids_in_the_page(run):
    assert not re.search(r"\bu\d{7}\b", _page(run))


@needs_chromium
def test_chromium_finds_every_goal_segment_and_chart(run, tmp_path):
    dom = _chromium(tmp_path, "--dump-dom", scorecard.report_path(run.lake).as_uri())
    for goal in run.pyramid_map.goals:
        assert f'data-goal="{goal.id}"' in dom
    for segment in run.pyramid_map.segments.definitions:
        assert f'data-segment="{segment.id}"' in dom
    figures = re.findall(r'<figure class="chart" data-chart="([^"]+)">(.*?)</figure>', dom, re.S)
    names = [name for name, _ in figures]
    expected = {
        "pyramid",
        "segment_sizes",
        "segment_history",
        "segment_stability",
        "exports",
        "north_star",
        "north_star_contributions",
        "quarantine",
        *(f"goal_{g.id}" for g in run.pyramid_map.goals),
    }
    assert set(names) == expected and len(names) == len(expected)
    for name, body in figures:
        assert body.lstrip().startswith("<svg"), name
        assert len(re.findall(r"<path\b", body)) >= 3, name  # axes and marks drawn


@needs_chromium
def test_screenshot_has_no_blank_chart(run, tmp_path):
    """Each chart alone in its own fixed cell of one page, one screenshot: every cell has ink."""
    charts = re.findall(r'<figure class="chart" data-chart="([^"]+)">(.*?)</figure>', _page(run), re.S)
    assert len(charts) == 8 + len(run.pyramid_map.goals)  # every chart found: a changed markup cannot pass empty
    cells = "".join(
        f'<div style="position:absolute;left:0;top:{i * CELL_H}px;width:{CELL_W}px;height:{CELL_H}px;'
        f'overflow:hidden">{svg}</div>'
        for i, (_, svg) in enumerate(charts)
    )
    sheet = tmp_path / "charts.html"
    sheet.write_text(
        f"<!DOCTYPE html><html><head><style>svg{{width:{CELL_W - 20}px;height:auto}}</style></head>"
        f"<body style='margin:0;background:#fff'>{cells}</body></html>"
    )
    png = tmp_path / "charts.png"
    _chromium(tmp_path, f"--window-size={CELL_W},{CELL_H * len(charts)}", f"--screenshot={png}", sheet.as_uri())
    image = Image.open(png).convert("L")
    for i, (name, _) in enumerate(charts):
        cell = image.crop((0, i * CELL_H, CELL_W, (i + 1) * CELL_H))
        histogram = cell.histogram()
        ink = sum(histogram[:200]) / (CELL_W * CELL_H)  # pixels clearly darker than white
        assert ink > 0.01, f"chart {name} looks blank ({ink:.2%} ink)"


def test_segment_stability_before_and_after_hysteresis_on_a_hand_made_card():
    """The table shows raw Jaccard and churn beside the stabilized ones; the chart draws the raw Jaccard of a
    targeted scored segment dashed, and none for a rule segment (raw = stabilized)."""
    days = [date(2026, 10, 1), date(2026, 10, 2)]
    rows = {
        "as_of": days * 2,
        "segment_id": ["rfm_loyal"] * 2 + ["savers"] * 2,
        "kind": ["value"] * 4,
        "method": ["rfm", "rfm", "rule", "rule"],
        "size": [1200, 1250, 900, 950],
        "min_size": [1000] * 4,
        "usable": [True, True, False, False],
        "entered": [None, 110, None, 50],
        "exited": [None, 60, None, 0],
        "jaccard": [None, 0.87, None, 0.947],
        "churn_share": [None, 170 / 1200, None, 50 / 900],  # 14%, 6%
        "raw_jaccard": [None, 0.231, None, 0.947],
        "raw_churn_share": [None, 1.25, None, 50 / 900],  # 125%, 6%
    }
    card = scorecard.Scorecard(
        program="p",
        as_of=days[1],
        max_churn_share=0.5,
        layers=[],
        quarantine=[],
        withheld=[],
        segments=pl.DataFrame(rows),
        campaigns=[{"segments": "rfm_loyal, savers"}],
    )
    section = scorecard._segments(card)
    table = section[: section.index('<div class="grid">')]
    cells = re.findall(r'data-segment="rfm_loyal">.*?</tr>', table)[0]
    assert re.findall(r"<td>(.*?)</td>", cells)[-4:] == [
        "0.870",
        '<span class="ok">14%</span>',
        "0.231",
        '<span class="bad">125%</span>',
    ]
    assert "raw Jaccard" in table and "raw churn" in table
    stability = re.findall(r'data-chart="segment_stability">(.*?)</figure>', section, re.S)[0]
    assert "rfm_loyal (raw)" in stability and "savers (raw)" not in stability
    assert "stroke-dasharray" in stability


def test_a_chart_with_one_finite_value_keeps_its_day_axis():
    """A lift NULL on the first day and known on the second (day 2 of every program): the axis spans the two
    days, not years of day ticks."""
    from assets import charts

    points = [(date(2026, 10, 1), None), (date(2026, 10, 2), 0.12)]
    svg = charts.line_chart({"lift": points}, "lift", hlines={"no effect": 0.0})
    assert 1 <= svg.count('id="xtick_') <= 3


def test_users_and_arms_count_the_days_snapshot_rows(run):
    """Counted on projected reads of the day (a delta rebuilt), against the rows as the run wrote them."""
    con = connect()
    for day in (run.days[-3], run.days[-1]):  # a day stored as a delta by now, and the newest, full
        counts = {layer: n for layer, n, _ in scorecard.layer_counts(con, run.lake, run.pyramid_map, day)}
        features = pq.read_table(run.as_run.partition_file("actionable", "user_features", day))
        assert counts["users"] == features.num_rows > 0
        sent = Counter((r["campaign_id"], r["arm"]) for r in run.sent[day])
        for row in scorecard.campaign_rows(con, run.lake, run.pyramid_map, day):
            assert row["treatment"] == sent[(row["campaign"], "treatment")]
            assert row["holdout_users"] == sent[(row["campaign"], "holdout")]
        assert sum(sent.values()) > 0


def test_raw_and_actionable_counts_stop_at_the_scorecards_day(run):
    """A re-run (or a ranged run) of an old day finds later days in the lake: the page counts up to its day."""
    con = connect()
    day = run.days[2]

    def rows(layer: str, tables, through) -> int:
        files = [f for t in tables for d in run.days if d <= through for f in _partition_files(run, layer, t, d)]
        return sum(pq.read_metadata(f).num_rows for f in files)

    counts = {layer: n for layer, n, _ in scorecard.layer_counts(con, run.lake, run.pyramid_map, day)}
    assert (
        counts["raw data"]
        == rows("raw", run.pyramid_map.sources, day)
        < rows("raw", run.pyramid_map.sources, run.days[-1])
    )
    assert counts["actionable data"] == rows("actionable", ["events", "transactions"], day) > 0


def _partition_files(run, layer: str, table: str, day) -> list:
    return sorted(run.lake.partition_file(layer, table, day).parent.glob("*.parquet"))
