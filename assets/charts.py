"""Charts for the scorecard: matplotlib (Agg) to self-contained inline SVG.

Every chart is a plain function of aggregate series (no user ids) returning an `<svg>` element as text.
The SVG carries no XML prolog, DOCTYPE or RDF metadata (their URLs would look like fetches), its text
stays text (`svg.fonttype: none`, so the browser's sans-serif draws it), and each chart gets its own
hash salt so that the element ids of two charts in one page never collide.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

Series = Sequence[tuple[object, float | None]]
WIDTH, HEIGHT = 6.4, 2.6
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_STYLE = {
    "svg.fonttype": "none",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.family": "sans-serif",
}


def line_chart(
    series: Mapping[str, Series],
    title: str,
    ylabel: str = "",
    bands: Mapping[str, Sequence[tuple[object, float | None, float | None]]] | None = None,
    hlines: Mapping[str, float] | None = None,
    percent: bool = False,
    ylim: tuple[float, float] | None = None,
    dashed: Mapping[str, Series] | None = None,
    dashed_label: str = "{}",
) -> str:
    """Lines per named series, optional interval bands (same names), labelled horizontal lines, and dashed
    companion lines (same names, same colours, labelled by `dashed_label`)."""
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": f"line:{title}"}):
        fig, ax = _figure(WIDTH, HEIGHT)
        for i, (name, points) in enumerate(series.items()):
            colour = COLOURS[i % len(COLOURS)]
            xs, ys = _xy(points)
            ax.plot(xs, ys, marker="o", markersize=2.5, linewidth=1.4, color=colour, label=name)
            if name in (dashed or {}):
                dxs, dys = _xy(dashed[name])
                ax.plot(dxs, dys, linestyle="--", linewidth=1.0, color=colour, label=dashed_label.format(name))
            band = [(x, lo, hi) for x, lo, hi in (bands or {}).get(name, []) if lo is not None and hi is not None]
            if band:
                ax.fill_between(
                    [b[0] for b in band],
                    [b[1] for b in band],
                    [b[2] for b in band],
                    color=colour,
                    alpha=0.18,
                    linewidth=0,
                )
        for j, (label, value) in enumerate((hlines or {}).items()):
            ax.axhline(value, color="#555555" if j == 0 else "#aaaaaa", linestyle="--", linewidth=1, label=label)
        _day_axis(ax, [p[0] for points in series.values() for p in points])
        if ylim:
            ax.set_ylim(*ylim)
        lines = len(series) + len(hlines or {}) + len(set(dashed or {}) & set(series))
        return _finish(fig, ax, title, ylabel, percent, legend=lines > 1)


def bar_chart(
    values: Mapping[str, float],
    title: str,
    ylabel: str = "",
    threshold: float | None = None,
    threshold_label: str = "",
    percent: bool = False,
    log: bool = False,
) -> str:
    """Horizontal bars, one per label, with an optional vertical threshold line (e.g. min_size)."""
    labels = list(values)
    height = max(1.4, 0.22 * len(labels) + 0.8)
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": f"bar:{title}"}):
        fig, ax = _figure(WIDTH, height)
        colours = [COLOURS[0] if threshold is None or values[k] >= threshold else COLOURS[3] for k in labels]
        ax.barh(labels, [values[k] for k in labels], color=colours)
        ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
        if threshold is not None:
            ax.axvline(threshold, color="#555555", linestyle="--", linewidth=1, label=threshold_label)
        if percent:
            ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        return _finish(fig, ax, title, "", False, legend=bool(threshold_label), xlabel=ylabel)


class _MeasuringCanvas(FigureCanvasAgg):
    """An Agg canvas whose renderer (only measured with, by `tight_layout`: the chart is drawn as SVG) is
    shared by the charts of the same size, so that matplotlib's text metrics, cached per renderer, are
    computed once per process rather than once per chart."""

    _renderers: dict[tuple[float, float, float], RendererAgg] = {}

    def get_renderer(self) -> RendererAgg:
        w, h = self.get_width_height(physical=True)
        key = (w, h, self.figure.dpi)
        if key not in self._renderers:
            if len(self._renderers) >= 16:
                self._renderers.clear()
            self._renderers[key] = RendererAgg(w, h, self.figure.dpi)
        return self._renderers[key]


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure on a measuring canvas, outside pyplot (no figure manager to register and close)."""
    fig = Figure(figsize=(width, height))
    _MeasuringCanvas(fig)
    return fig, fig.subplots()


def _day_axis(ax: Axes, xs: list) -> None:
    """Whole days on the x axis, at most about eight ticks."""
    if not xs or not isinstance(xs[0], date):
        return
    span = (max(xs) - min(xs)).days + 1
    # always set: with one day, or with no finite value to plot (a lift still NULL), matplotlib pads a date
    # axis by years, and drawing those day ticks costs seconds per chart
    pad = timedelta(days=1) if span == 1 else timedelta(hours=12)
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, -(-span // 8))))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))


def _xy(points: Series) -> tuple[list, list]:
    return [p[0] for p in points], [float("nan") if p[1] is None else p[1] for p in points]


def _finish(fig: Figure, ax: Axes, title: str, ylabel: str, percent: bool, legend: bool, xlabel: str = "") -> str:
    ax.set_title(title, loc="left", fontsize=9)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", color="#eeeeee", linewidth=0.6)
    if percent:
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    if legend:
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return inline_svg(buffer.getvalue())


def inline_svg(svg: str) -> str:
    """The `<svg>` element alone: no prolog, DOCTYPE, RDF metadata, nor any external link."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    return re.sub(r'\s(?:xlink:)?href="https?://[^"]*"', "", svg)
