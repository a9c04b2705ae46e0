"""The scorecard: one static HTML page per day under `<root>/reports/scorecard/`, read from the lake.

`gather` reads aggregates only (counts, sizes, rates, lifts: never a user id) with DuckDB over the
lake's Parquet files, up to and including the as-of day; `render` turns them into a page whose charts
are inline SVG (`assets/charts.py`) and whose style is inline, so it opens from disk with no server and
no network; `write` puts it at `reports/scorecard/<ds>.html` and, when it is the latest day, at
`reports/scorecard/index.html`, each atomically. `metadata` gives the numbers Dagster plots.

Contents, top of the page to bottom: the pyramid (per-layer counts, what was refused, withheld and
blocked, and why); segments (sizes over time, stability: entered, exited, Jaccard, churn, and the
Jaccard and churn before the scored segments' hysteresis, usability against min_size); campaigns
(audience and arms, exports per touchpoint after priority and caps); goals (lift to date with its
always-valid interval, target line, status, guardrails, sample-ratio check); the North Star with each
goal's contribution; data quality (quarantine by reason, withheld columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from assets import charts
from assets.lake import Lake, connect, write_text_atomic
from assets.pyramid_map import PyramidMap
from assets.scorecard_goals import goals_section
from assets.scorecard_html import e, figure, pct, table
from assets.snapshots import SNAPSHOTS, read_day

QUARANTINE_SOURCES = ("events", "transactions", "profiles")
REPORT_DIR = "scorecard"


@dataclass
class Scorecard:
    """Everything the page shows, as aggregates."""

    program: str
    as_of: date
    max_churn_share: float
    layers: list[tuple[str, int, str]]
    quarantine: list[tuple[str, str, int]]  # source, reason, rows on the day
    withheld: list[tuple[str, str, str]]  # source, column, expectation
    blocked: list[tuple[str, str, str]] = field(default_factory=list)  # kind, item, cause
    segments: pl.DataFrame = field(default_factory=pl.DataFrame)  # segment_summary, every day up to as_of
    campaigns: list[dict] = field(default_factory=list)
    goals: pl.DataFrame = field(default_factory=pl.DataFrame)  # goal_metrics to_date rows, every day
    north_star: pl.DataFrame = field(default_factory=pl.DataFrame)
    contributions: pl.DataFrame = field(default_factory=pl.DataFrame)


def read(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    layer: str,
    table: str,
    where: str = "TRUE",
    columns: str = "*",
    group_by: str = "",
) -> pl.DataFrame:
    """A table's rows over every partition (hive `ds` column included); empty when never written."""
    if not lake.partitions(layer, table):
        return pl.DataFrame()
    return con.sql(
        f"SELECT {columns} FROM read_parquet('{lake.glob(layer, table)}', hive_partitioning = true, "
        f"union_by_name = true) WHERE {where} {'GROUP BY ' + group_by if group_by else ''}"
    ).pl()


def read_day_rows(
    con: duckdb.DuckDBPyConnection, lake: Lake, layer: str, table: str, as_of: date, columns: str, read: Sequence[str]
) -> pl.DataFrame:
    """`columns` (aggregates, grouped by the rest) over a snapshot table's rows of one day, of which only the columns
    `read` are read, rebuilt when stored as a delta (assets/snapshots.py); no rows when the day was never written."""
    if not lake.has_partition(layer, table, as_of):
        return pl.DataFrame()
    con.register("_day", read_day(lake, layer, table, as_of, read))
    try:
        return con.sql(f"SELECT {columns} FROM _day GROUP BY ALL").pl()
    finally:
        con.unregister("_day")


def day_count(con: duckdb.DuckDBPyConnection, lake: Lake, layer: str, table: str, as_of: date) -> int:
    """A snapshot table's rows of one day (only its key is read: user_features has over a hundred columns)."""
    frame = read_day_rows(con, lake, layer, table, as_of, "count(*) AS n", SNAPSHOTS[(layer, table)].key)
    return 0 if frame.is_empty() else int(frame["n"][0])


def count(con: duckdb.DuckDBPyConnection, lake: Lake, layer: str, table: str, where: str = "TRUE") -> int:
    frame = read(con, lake, layer, table, where, "count(*) AS n")
    return 0 if frame.is_empty() else int(frame["n"][0])


def layer_counts(
    con: duckdb.DuckDBPyConnection, lake: Lake, pyramid_map: PyramidMap, as_of: date
) -> list[tuple[str, int, str]]:
    """(layer, count, what) bottom to top; raw and actionable over the days up to `as_of` (a re-run or a ranged run
    of an old day finds later days in the lake), the rest on `as_of`."""
    through, day = f"ds <= DATE '{as_of}'", f"ds = DATE '{as_of}'"
    raw = sum(count(con, lake, "raw", s, through) for s in pyramid_map.sources)
    actionable = sum(count(con, lake, "actionable", t, through) for t in ("events", "transactions"))
    quarantined = sum(count(con, lake, "actionable", f"quarantine_{s}", through) for s in QUARANTINE_SOURCES)
    users = day_count(con, lake, "actionable", "user_features", as_of)
    memberships = count(con, lake, "segments", "segment_membership", day)
    audience = day_count(con, lake, "campaigns", "audiences", as_of)
    exports = sum(count(con, lake, "touchpoints", t.id, day) for t in pyramid_map.touchpoints)
    return [
        ("raw data", raw, f"rows landed, all sources, the days up to {as_of}"),
        ("actionable data", actionable, f"events and transactions promoted ({quarantined:,} quarantined)"),
        ("users", users, f"known users with features on {as_of}"),
        ("user segments", len(pyramid_map.segments.definitions), f"{memberships:,} memberships"),
        ("contexts & campaigns", len(pyramid_map.campaigns), f"{audience:,} audience members"),
        ("touchpoints", len(pyramid_map.touchpoints), f"{exports:,} users exported for {as_of}"),
        ("goals", len(pyramid_map.goals), "measured treatment vs holdout"),
        ("North Star", 1, f"{pyramid_map.north_star.id}: {pyramid_map.north_star.metric}"),
    ]


def gather(
    lake: Lake, pyramid_map: PyramidMap, as_of: date, blocked: list[tuple[str, str, str]] | None = None
) -> Scorecard:
    """Read the scorecard's aggregates for `as_of` (histories up to it) from the lake."""
    con = connect()
    through, day = f"ds <= DATE '{as_of}'", f"ds = DATE '{as_of}'"
    return Scorecard(
        program=pyramid_map.program_name,
        as_of=as_of,
        max_churn_share=pyramid_map.segments.max_churn_share,
        layers=layer_counts(con, lake, pyramid_map, as_of),
        quarantine=quarantine_by_reason(con, lake, as_of),
        withheld=[
            (r["source"], r["column"], r["expectation"])
            for s in QUARANTINE_SOURCES
            for r in read(con, lake, "actionable", f"column_status_{s}", f"{day} AND status = 'withheld'").iter_rows(
                named=True
            )
        ],
        blocked=blocked or [],
        segments=read(con, lake, "segments", "segment_summary", through).sort(["segment_id", "as_of"]),
        campaigns=campaign_rows(con, lake, pyramid_map, as_of),
        goals=read(con, lake, "goals", "goal_metrics", f"{through} AND \"window\" = 'to_date'").sort(
            ["goal_id", "kind", "metric", "ds"]
        ),
        north_star=read(con, lake, "goals", "north_star", through).sort("ds"),
        contributions=read(con, lake, "goals", "north_star_contributions", through).sort(["goal_id", "ds"]),
    )


def quarantine_by_reason(con: duckdb.DuckDBPyConnection, lake: Lake, as_of: date) -> list[tuple[str, str, int]]:
    """(source, reason, rows) quarantined on the day; a row with several reasons counts under each."""
    rows = []
    for source in QUARANTINE_SOURCES:
        frame = read(
            con, lake, "actionable", f"quarantine_{source}", f"ds = DATE '{as_of}'", "unnest(reasons) AS reason"
        )
        if not frame.is_empty():
            counted = frame.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
            rows += [(source, r, int(n)) for r, n in counted.iter_rows()]
    return rows


def campaign_rows(con: duckdb.DuckDBPyConnection, lake: Lake, pyramid_map: PyramidMap, as_of: date) -> list[dict]:
    """Per campaign: segments, arms (users per arm on the day) and exports per touchpoint after caps."""
    day = f"ds = DATE '{as_of}'"
    per_arm = "campaign_id, arm, count(DISTINCT user_id) AS users"
    arms = read_day_rows(con, lake, "campaigns", "audiences", as_of, per_arm, ("campaign_id", "arm", "user_id"))
    arm_users = {(r["campaign_id"], r["arm"]): r["users"] for r in arms.iter_rows(named=True)}
    exported: dict[tuple[str, str], int] = {}
    for tp in pyramid_map.touchpoints:
        frame = read(con, lake, "touchpoints", tp.id, day, "campaign_id, count(*) AS users", "ALL")
        exported |= {(r["campaign_id"], tp.id): r["users"] for r in frame.iter_rows(named=True)}
    return [
        {
            "campaign": c.id,
            "segments": ", ".join(c.segments),
            "priority": c.priority,
            "holdout": c.holdout,
            "cap": f"{c.frequency_cap.max} per {c.frequency_cap.per_days} d",
            "treatment": arm_users.get((c.id, "treatment"), 0),
            "holdout_users": arm_users.get((c.id, "holdout"), 0),
            "exports": {tp: exported.get((c.id, tp), 0) for tp in c.touchpoints},
            "aa": not c.treated,
        }
        for c in pyramid_map.campaigns
    ]


def metadata(card: Scorecard) -> dict[str, float | int]:
    """The numbers Dagster plots across partitions: segment sizes, goal lifts and bounds, the North Star,
    quarantined rows. Missing values are NaN, so that every key is a float every day."""
    values: dict[str, float | int] = {}
    today = card.segments.filter(pl.col("as_of") == card.as_of) if not card.segments.is_empty() else card.segments
    for row in today.iter_rows(named=True):
        values[f"segment_size/{row['segment_id']}"] = int(row["size"])
    goals = _today_goals(card)
    for row in goals.iter_rows(named=True):
        for column in ("lift", "ci_low", "ci_high"):
            values[f"{column}/{row['goal_id']}"] = _float(row[column])
    star = card.north_star.filter(pl.col("ds") == card.as_of) if not card.north_star.is_empty() else card.north_star
    values["north_star"] = _float(star["value"][0] if star.height else None)
    values["quarantined_rows"] = sum(n for _, _, n in card.quarantine)
    return values


def _today_goals(card: Scorecard) -> pl.DataFrame:
    if card.goals.is_empty():
        return card.goals
    return card.goals.filter((pl.col("ds") == card.as_of) & (pl.col("kind") == "goal"))


def _float(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def report_path(lake: Lake, as_of: date | None = None) -> Path:
    """reports/scorecard/<ds>.html, or index.html (the latest day) when `as_of` is None."""
    return lake.reports / REPORT_DIR / (f"{as_of.isoformat()}.html" if as_of else "index.html")


def write(lake: Lake, card: Scorecard) -> Path:
    """Write the day's page, and index.html when no later day has a page; returns the day's path."""
    page = render(card)
    path = write_text_atomic(page, report_path(lake, card.as_of))
    days = sorted(p.stem for p in path.parent.glob("????-??-??.html"))
    if days[-1] == card.as_of.isoformat():
        write_text_atomic(page, report_path(lake))
    return path


# ---- rendering -------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem auto;max-width:1180px;
color:#222;padding:0 1rem}
h1{font-size:1.4rem}h2{font-size:1.15rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1rem;margin:1rem 0 .3rem}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0}
th,td{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
figure.chart{margin:0;max-width:640px}figure.chart svg{width:100%;height:auto}
.ok{color:#1a7f37}.bad{color:#c62828}.warn{color:#b26a00}.muted{color:#777}
"""


def render(card: Scorecard) -> str:
    """The whole page: inline CSS and SVG, no script, no external URL."""
    aa_campaigns = [c["campaign"] for c in card.campaigns if c.get("aa")]
    goals = goals_section(card.goals, card.as_of, aa_campaigns)
    sections = [_pyramid(card), _segments(card), _campaigns(card), goals, _north_star(card), _quality(card)]
    title = f"{card.program}: scorecard {card.as_of}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{CSS}</style></head><body>\n<h1>{e(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def _pyramid(card: Scorecard) -> str:
    rows = [[e(layer), f"{n:,}", e(what)] for layer, n, what in card.layers]
    chart = charts.bar_chart(
        {layer: max(n, 1) for layer, n, _ in reversed(card.layers)},
        f"The pyramid on {card.as_of} (log scale)",
        "count",
        log=True,
    )
    refused = [[e(s), e(r), f"{n:,}"] for s, r, n in card.quarantine]
    blocked = [[e(k), e(item), e(cause)] for k, item, cause in card.blocked]
    return (
        '<section id="pyramid"><h2>The pyramid</h2><div class="grid">'
        + table(["layer", "count", "what"], rows)
        + figure("pyramid", chart)
        + "</div>"
        + "<h3>Refused today (quarantined rows by reason)</h3>"
        + (table(["source", "reason", "rows"], refused) if refused else '<p class="muted">none</p>')
        + "<h3>Blocked today (needs a withheld column)</h3>"
        + (table(["kind", "item", "blocked by"], blocked) if blocked else '<p class="muted">nothing</p>')
        + "</section>"
    )


def _segments(card: Scorecard) -> str:
    if card.segments.is_empty():
        return '<section id="segments"><h2>Segments</h2><p class="muted">no segment summary yet</p></section>'
    history = card.segments
    today = history.filter(pl.col("as_of") == card.as_of).sort("size", descending=True)
    rows = [
        [
            f'<span data-segment="{e(r["segment_id"])}">{e(r["segment_id"])}</span>',
            e(r["kind"]),
            f"{r['size']:,}",
            f"{r['min_size']:,}",
            '<span class="ok">yes</span>' if r["usable"] else '<span class="bad">no</span>',
            _int(r["entered"]),
            _int(r["exited"]),
            _jaccard(r["jaccard"]),
            _churn(r.get("churn_share"), card.max_churn_share),
            _jaccard(r.get("raw_jaccard")),
            _churn(r.get("raw_churn_share"), card.max_churn_share),
        ]
        for r in today.iter_rows(named=True)
    ]
    sizes = charts.bar_chart(
        {r["segment_id"]: r["size"] for r in today.iter_rows(named=True)},
        f"Segment sizes on {card.as_of} against min_size",
        "members",
        threshold=float(today["min_size"].min()),
        threshold_label="min_size",
    )
    targeted = history.filter(pl.col("segment_id").is_in(_targeted(card)))  # the lines that fit one chart
    series = {
        s: list(zip(g["as_of"].to_list(), g["size"].to_list()))
        for (s,), g in targeted.group_by("segment_id", maintain_order=True)
    }
    jaccard = {
        s: list(zip(g["as_of"].to_list(), g["jaccard"].to_list()))
        for (s,), g in targeted.group_by("segment_id", maintain_order=True)
    }
    scored = targeted.filter(pl.col("method") != "rule") if "raw_jaccard" in targeted.columns else targeted.clear()
    raw = {
        s: list(zip(g["as_of"].to_list(), g["raw_jaccard"].to_list()))
        for (s,), g in scored.group_by("segment_id", maintain_order=True)
    }
    return (
        '<section id="segments"><h2>Segments</h2>'
        + '<p class="muted">Stability against the day before: after the hysteresis of scored segments, and'
        + " raw (today's scoring alone, before it). Rule segments have no hysteresis: raw is the same.</p>"
        + table(
            [
                "segment",
                "kind",
                "size",
                "min_size",
                "usable",
                "entered",
                "exited",
                "Jaccard",
                f"churn (max {card.max_churn_share:.0%})",
                "raw Jaccard",
                "raw churn",
            ],
            rows,
        )
        + '<div class="grid">'
        + figure("segment_sizes", sizes)
        + figure("segment_history", charts.line_chart(series, "Sizes over time (segments with a campaign)", "members"))
        + figure(
            "segment_stability",
            charts.line_chart(
                jaccard,
                "Stability: Jaccard with the day before (segments with a campaign; dashed: raw)",
                "Jaccard",
                dashed=raw,
                dashed_label="{} (raw)",
            ),
        )
        + "</div></section>"
    )


def _targeted(card: Scorecard) -> list[str]:
    return list(dict.fromkeys(s for c in card.campaigns for s in c["segments"].split(", ")))


def _int(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _jaccard(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _churn(value: float | None, limit: float) -> str:
    if value is None:
        return "—"
    return f'<span class="{"bad" if value > limit else "ok"}">{value:.0%}</span>'


def _campaigns(card: Scorecard) -> str:
    rows, exports = [], {}
    for c in card.campaigns:
        sent = ", ".join(f"{tp} {n:,}" for tp, n in c["exports"].items())
        rows.append(
            [
                e(c["campaign"]),
                e(c["segments"]),
                str(c["priority"]),
                f"{c['holdout']:.0%}",
                e(c["cap"]),
                f"{c['treatment']:,}",
                f"{c['holdout_users']:,}",
                e(sent),
            ]
        )
        exports |= {f"{c['campaign']} → {tp}": n for tp, n in c["exports"].items()}
    chart = charts.bar_chart(exports or {"none": 0}, f"Exports on {card.as_of}, after priority and caps", "users")
    return (
        '<section id="campaigns"><h2>Campaigns and touchpoints</h2>'
        + table(
            [
                "campaign",
                "segments",
                "priority",
                "holdout",
                "cap",
                "treatment",
                "holdout users",
                "exported (touchpoint users)",
            ],
            rows,
        )
        + figure("exports", chart)
        + "</section>"
    )


def _north_star(card: Scorecard) -> str:
    if card.north_star.is_empty():
        return '<section id="north_star"><h2>North Star</h2><p class="muted">no series yet</p></section>'
    star = card.north_star
    name = f"{star['north_star_id'][0]} ({star['metric'][0]})"
    series = charts.line_chart(
        {name: list(zip(star["ds"].to_list(), star["value"].to_list()))}, f"North Star: {name}", "value", percent=True
    )
    contributions = {
        g: list(zip(rows["ds"].to_list(), rows["contribution"].to_list()))
        for (g,), rows in card.contributions.group_by("goal_id", maintain_order=True)
    }
    figures = figure("north_star", series)
    if contributions:
        figures += figure(
            "north_star_contributions",
            charts.line_chart(contributions, "Each goal's contribution to the North Star", "points", percent=True),
        )
    value = star["value"][-1]
    return (
        f'<section id="north_star"><h2>North Star</h2><p>{e(name)} on {star["ds"][-1]}: '
        f'<strong>{pct(value)}</strong></p><div class="grid">{figures}</div></section>'
    )


def _quality(card: Scorecard) -> str:
    by_reason: dict[str, int] = {}
    for source, reason, n in card.quarantine:
        by_reason[f"{source}: {reason}"] = by_reason.get(f"{source}: {reason}", 0) + n
    chart = charts.bar_chart(by_reason or {"none": 0}, f"Quarantined rows by reason on {card.as_of}", "rows")
    withheld = [[e(s), e(c), e(x)] for s, c, x in card.withheld]
    return (
        '<section id="quality"><h2>Data quality</h2><div class="grid">'
        + figure("quarantine", chart)
        + "<div><h3>Withheld columns</h3>"
        + (
            table(["source", "column", "expectation"], withheld)
            if withheld
            else '<p class="muted">none: every column promoted</p>'
        )
        + "</div></div></section>"
    )
