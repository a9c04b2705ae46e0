"""The scorecard of the small run (fixture `run`): written every day, self-contained, and rendered by a
real headless Chromium with every goal, segment and chart present and no blank chart."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from assets import scorecard

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
