"""`pyramid segments`: every segment's size, usability, stability and baselines as of a day, as data
(`segments_data`, what `--json` prints) and as tables that fit an 80- to 120-column terminal."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
from rich.console import Console
from rich.table import Table

from assets.lake import Lake, connect
from pipelines import cells

OPTIONAL_SUMMARY_COLUMNS = (  # segment_summary columns NULL (or their default) in older partitions
    ("method", "rule", pl.String),
    ("churn_share", None, pl.Float64),
    ("median_days_in_segment", None, pl.Float64),
    ("window_complete", None, pl.Boolean),
)


def with_optional(frame: pl.DataFrame, columns: tuple) -> pl.DataFrame:
    """`frame` with each optional column a partition written before it existed lacks, filled with its default."""
    missing = [pl.lit(default, kind).alias(name) for name, default, kind in columns if name not in frame.columns]
    return frame.with_columns(missing) if missing else frame


def segments_data(lake: Lake, as_of: date) -> dict | None:
    """`pyramid segments` as data: every segment's summary as of the day with its baseline ratio on each goal
    metric (segment rate / eligible rate, `segment_baselines`); None when the day has no summary."""
    summary_file = lake.partition_file("segments", "segment_summary", as_of)
    if not summary_file.exists():
        return None
    con = connect()
    summary = con.sql("SELECT * FROM read_parquet(?)", params=[str(summary_file)]).pl()
    summary = with_optional(summary, OPTIONAL_SUMMARY_COLUMNS).sort(
        [pl.col("method") != "rule", "method", "size", "segment_id"], descending=[False, False, True, False]
    )
    baselines_file = lake.partition_file("segments", "segment_baselines", as_of)
    ratios: dict[str, dict[str, float | None]] = {}
    metrics: list[str] = []
    if baselines_file.exists():
        for segment_id, metric, ratio in con.sql(
            "SELECT segment_id, metric, ratio FROM read_parquet(?)", params=[str(baselines_file)]
        ).fetchall():
            ratios.setdefault(segment_id, {})[metric] = ratio
            metrics += [metric] if metric not in metrics else []
    rows = [{**r, "baselines": ratios.get(r["segment_id"], {})} for r in summary.to_dicts()]
    return {"as_of": as_of, "metrics": metrics, "segments": rows}


def segments_json(data: dict) -> str:
    return json.dumps(data, default=str, indent=1)


def segments_report(lake: Lake, as_of: date, width: int = 120) -> list[Table] | None:
    """`pyramid segments`: one table when it fits `width` columns, else three narrower ones (size and
    usability, stability, baselines with a legend for the metric names)."""
    data = segments_data(lake, as_of)
    if data is None:
        return None
    whole = _segments_whole(data, as_of)
    if Console(width=10_000).measure(whole).maximum <= width:  # its natural width, unclamped
        return [whole]
    return _segments_split(data, as_of)


def _segment_cells(r: dict) -> dict[str, str]:
    return {
        "size": f"{r['size']:,}",
        "share": cells.pct(r["share"]),
        "usable": cells.usable(r["usable"]),
        "Jaccard": cells.jaccard(r["jaccard"]),
        "entered": cells.count(r["entered"]),
        "exited": cells.count(r["exited"]),
        "churn": cells.pct(r["churn_share"]),
        "median days": "—" if r["median_days_in_segment"] is None else f"{r['median_days_in_segment']:g}",
        "window": cells.window(r["window_complete"]),
    }


def _segments_whole(data: dict, as_of: date) -> Table:
    rows, metrics = data["segments"], data["metrics"]
    table = Table(title=f"Segments as of {as_of} (baselines: segment rate / eligible rate)", title_justify="left")
    for column in [
        "segment",
        "kind",
        "size",
        "share",
        "usable",
        "Jaccard",
        "entered",
        "exited",
        "churn",
        "median days",
        "window",
        *metrics,
    ]:
        table.add_column(
            column,
            justify="left" if column in ("segment", "kind") else "right",
            overflow="fold",
            no_wrap=column in ("segment", "kind"),
        )
    for r in rows:
        table.add_row(
            r["segment_id"],
            r["kind"],
            *_segment_cells(r).values(),
            *(cells.times(r["baselines"].get(m)) for m in metrics),
        )
    return table


def _segments_split(data: dict, as_of: date) -> list[Table]:
    rows, metrics = data["segments"], data["metrics"]
    names = {"segment": [r["segment_id"] for r in rows]}
    sizes = cells.grid(
        f"Segments as of {as_of}: size and usability",
        ["segment", "kind", "method", "size", "share", "usable", "window"],
        names={**names, "kind": [r["kind"] for r in rows], "method": [r["method"] for r in rows]},
    )
    stability = cells.grid(
        "Stability against the day before",
        ["segment", "Jaccard", "entered", "exited", "churn", "median days"],
        names=names,
    )
    codes = {m: f"M{i + 1}" for i, m in enumerate(metrics)}
    legend = "; ".join(f"{code} = {m}" for m, code in codes.items())
    baselines = cells.grid(
        f"Baselines: segment rate / eligible rate ({legend})", ["segment", *codes.values()], names=names
    )
    for r in rows:
        values = _segment_cells(r)
        sizes.add_row(
            r["segment_id"], r["kind"], r["method"], *(values[c] for c in ("size", "share", "usable", "window"))
        )
        stability.add_row(
            r["segment_id"], *(values[c] for c in ("Jaccard", "entered", "exited", "churn", "median days"))
        )
        baselines.add_row(r["segment_id"], *(cells.times(r["baselines"].get(m)) for m in metrics))
    return [sizes, stability, baselines] if metrics else [sizes, stability]
