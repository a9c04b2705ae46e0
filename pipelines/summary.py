"""The end-of-run summary: the pyramid's counts per layer, its segments, goals and North Star.

Each report is data first (`summary_data`, `segments_data`: plain dicts, what `--json` prints), then
tables that fit an 80- to 120-column terminal without cutting a name: name columns never shrink below
their longest name, other cells wrap (`overflow="fold"`, never "…"), wide reports are split into
several narrower tables, and long metric names become short headers with a legend.
"""

from __future__ import annotations

import json
import math
from datetime import date

import duckdb
import polars as pl
from rich import box
from rich.console import Console
from rich.table import Table

from assets.campaigns import admitted_by_context, deciding_contexts
from assets.lake import Lake, connect, read_partition
from assets.north_star import total_contribution
from assets.pyramid_map import PyramidMap
from assets.scorecard import layer_counts, read

SPARK = "▁▂▃▄▅▆▇█"
OPTIONAL_SUMMARY_COLUMNS = (
    ("method", "rule", pl.String),
    ("churn_share", None, pl.Float64),
    ("median_days_in_segment", None, pl.Float64),
    ("window_complete", None, pl.Boolean),
)
# North Star columns added with window coverage and contribution intervals (NULL in older partitions)
OPTIONAL_STAR_COLUMNS = (("window_complete", None, pl.Boolean),)
# time-to-event goal rows (assets.time_to_event; NULL on other rows and in older partitions)
OPTIONAL_GOAL_COLUMNS = tuple(
    (f"{arm}_{name}", None, kind)
    for arm in ("treatment", "holdout")
    for name, kind in (("censored", pl.Int64), ("share_within", pl.Float64))
)
OPTIONAL_CONTRIBUTION_COLUMNS = (
    ("campaign_id", None, pl.String),
    ("ci_low", None, pl.Float64),
    ("ci_high", None, pl.Float64),
)


def print_summary(lake: Lake, pyramid_map: PyramidMap, console: Console, as_json: bool = False) -> None:
    data = summary_data(lake, pyramid_map)
    if as_json:
        print(json.dumps(data, default=str, indent=1))
        return
    print_erasure_requests(connect(), lake, console)
    if not data:
        console.print("[yellow]no materialized North Star yet: run `pyramid run` first[/yellow]")
        return
    console.rule(f"[bold]{pyramid_map.program_name}[/bold] — the pyramid as of {data['as_of']}")
    console.print(_layers_table(data["layers"]))
    if data["contexts"]:
        console.print(_contexts_table(data["contexts"]))
    console.print(*_segments_table(data["segments"], data["as_of"]))
    console.print(*_goals_table(data["goals"]))
    _print_north_star(data["north_star"], console)


def summary_data(lake: Lake, pyramid_map: PyramidMap) -> dict:
    """The summary as plain data; {} before the first North Star."""
    days = lake.partitions("goals", "north_star")
    if not days:
        return {}
    con, as_of = connect(), days[-1]
    day = f"ds = DATE '{as_of}'"
    truth = _planted_effects(lake)
    goal_rows = read(con, lake, "goals", "goal_metrics", f"{day} AND \"window\" = 'to_date' AND kind = 'goal'")
    goals = (
        _with_optional(goal_rows, OPTIONAL_GOAL_COLUMNS)
        .select(
            "goal_id",
            "metric",
            "campaign_id",
            pl.col("treatment_value").alias("treatment"),
            pl.col("holdout_value").alias("holdout"),
            *("lift", "ci_low", "ci_high", "ci_low_unadjusted", "ci_high_unadjusted", "target", "status"),
            *("treatment_users", "holdout_users", *(name for name, _, _ in OPTIONAL_GOAL_COLUMNS)),
        )
        .sort("goal_id")
        .to_dicts()
    )
    guardrails = _guardrails_by_goal(con, lake, day)
    for goal in goals:
        metric = pyramid_map.metrics.get(goal["metric"])
        goal["kind"] = metric.kind if metric else "share"
        goal["direction"] = metric.goal_direction() if metric else "increase"
        goal["time_to_event"] = _time_to_event(goal, pyramid_map)
        goal["narrower"] = None if goal["time_to_event"] else _cuped_narrowing(goal)
        goal["planted"] = truth.get(goal["campaign_id"]) if truth else None
        goal["guardrails"] = guardrails.get(goal["goal_id"], [])
        for guardrail in goal["guardrails"]:
            metric = pyramid_map.metrics.get(guardrail["metric"])
            guardrail["direction"] = metric.guardrail_direction() if metric else "decrease"
    star = _with_optional(read(con, lake, "goals", "north_star"), OPTIONAL_STAR_COLUMNS)
    star = star.select("ds", "value", "window_complete").sort("ds")
    contributions = read(con, lake, "goals", "north_star_contributions", day)
    if contributions.height:
        contributions = _with_optional(contributions, OPTIONAL_CONTRIBUTION_COLUMNS)
        contributions = contributions.select("goal_id", "campaign_id", "contribution", "ci_low", "ci_high")
    return {
        "program": pyramid_map.program_name,
        "as_of": as_of,
        "layers": [
            {"layer": layer, "count": n, "what": what} for layer, n, what in layer_counts(con, lake, pyramid_map, as_of)
        ],
        "segments": _with_optional(read(con, lake, "segments", "segment_summary", day), OPTIONAL_SUMMARY_COLUMNS)
        .select("segment_id", "kind", "size", "share", "usable", "jaccard", "entered", "exited", "window_complete")
        .sort(["size", "segment_id"], descending=[True, False])
        .to_dicts(),
        "contexts": contexts_admitted(lake, pyramid_map, as_of),
        "goals": goals,
        "north_star": {
            "id": pyramid_map.north_star.id,
            "metric": pyramid_map.north_star.metric,
            "series": star.to_dicts(),
            "contributions": contributions.sort("goal_id").to_dicts() if contributions.height else [],
            "total": _total_contribution(contributions),
        },
    }


def _with_optional(frame: pl.DataFrame, columns: tuple) -> pl.DataFrame:
    """`frame` with each optional column a partition written before it existed lacks, filled with its default."""
    missing = [pl.lit(default, kind).alias(name) for name, default, kind in columns if name not in frame.columns]
    return frame.with_columns(missing) if missing else frame


def _total_contribution(contributions: pl.DataFrame) -> dict | None:
    """The campaigns' contributions added up, each campaign once (`assets.north_star.total_contribution`)."""
    if contributions.is_empty():
        return None
    return total_contribution(contributions.to_arrow())


def print_erasure_requests(con: duckdb.DuckDBPyConnection, lake: Lake, console: Console) -> None:
    """Erasure requests that could not be honoured (quarantined), by file and line; one line when none."""
    if not lake.partitions("actionable", "quarantine_erasure_requests"):
        return
    rows = con.sql(
        f"SELECT _source_file, _source_line, array_to_string(reasons, ', ') FROM read_parquet("
        f"'{lake.glob('actionable', 'quarantine_erasure_requests')}', hive_partitioning = true) ORDER BY 1, 2"
    ).fetchall()
    if not rows:
        console.print("erasure requests: every request was honoured")
        return
    console.print(
        f"[red]erasure requests: {len(rows)} cannot be honoured[/red] "
        "(actionable/quarantine_erasure_requests; correct them at the source and re-run their day):"
    )
    for source_file, line, reasons in rows[:20]:
        console.print(f"  {source_file}:{line} ({reasons})")


def _guardrails_by_goal(con: duckdb.DuckDBPyConnection, lake: Lake, day: str) -> dict[str, list[dict]]:
    """Each goal's guardrails, campaign to date: the rise of the metric, its interval, margin and status."""
    rows = read(
        con,
        lake,
        "goals",
        "goal_metrics",
        f"{day} AND \"window\" = 'to_date' AND kind = 'guardrail'",
        "goal_id, metric, lift AS rise, ci_low, ci_high, margin, status",
    )
    by_goal: dict[str, list[dict]] = {}
    for row in [] if rows.is_empty() else rows.sort("goal_id", "metric").to_dicts():
        by_goal.setdefault(row.pop("goal_id"), []).append(row)
    return by_goal


def contexts_admitted(lake: Lake, pyramid_map: PyramidMap, as_of: date) -> list[dict]:
    """Per campaign that declares contexts: what share of its segments' members they admitted on `as_of`."""
    if not deciding_contexts(pyramid_map.campaigns):
        return []
    con = connect()
    membership = read_partition(con, lake.partition_file("segments", "segment_membership", as_of))
    audiences = read_partition(con, lake.partition_file("campaigns", "audiences", as_of))
    admitted = admitted_by_context(membership, audiences, pyramid_map.campaigns)
    return [{"campaign_id": campaign_id, **row} for campaign_id, row in admitted.items()]


def _contexts_table(rows: list[dict]) -> Table:
    table = _table(
        "Contexts: the share of each campaign's segment members they admit",
        ["campaign", "members", "admitted", "share", "per context"],
        names={"campaign": [r["campaign_id"] for r in rows]},
        left=("per context",),
    )
    for r in rows:
        per_context = ", ".join(f"{c} {n:,}" for c, n in r["per_context"].items())
        table.add_row(
            r["campaign_id"], f"{r['segment_members']:,}", f"{r['admitted']:,}", _pct(r["admitted_share"]), per_context
        )
    return table


def _table(
    title: str, columns: list[str], names: dict[str, list[str]] | None = None, left: tuple[str, ...] = ()
) -> Table:
    """A compact table; the columns in `names` never shrink below their longest value (no cut names)."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        longest = max((len(v) for v in (names or {}).get(column, [])), default=0)
        table.add_column(
            column,
            justify="left" if column in left or column in (names or {}) else "right",
            overflow="fold",
            min_width=max(longest, len(column)) if longest else None,
        )
    return table


def _layers_table(layers: list[dict]) -> Table:
    table = _table(
        "The pyramid, bottom to top",
        ["layer", "count", "what"],
        names={"layer": [r["layer"] for r in layers]},
        left=("what",),
    )
    for r in layers:
        table.add_row(r["layer"], f"{r['count']:,}", r["what"])
    return table


def _segments_table(rows: list[dict], as_of: date) -> list[Table]:
    """Two tables, so that each fits 80 columns: size and usability, then stability."""
    names = {"segment": [r["segment_id"] for r in rows]}
    sizes = _table(
        f"Segments as of {as_of}",
        ["segment", "kind", "size", "share", "usable", "window"],
        names={**names, "kind": [r["kind"] for r in rows]},
    )
    stability = _table("Stability against the day before", ["segment", "Jaccard", "entered", "exited"], names=names)
    for r in rows:
        sizes.add_row(
            r["segment_id"],
            r["kind"],
            f"{r['size']:,}",
            _pct(r["share"]),
            _usable(r["usable"]),
            _window(r["window_complete"]),
        )
        stability.add_row(r["segment_id"], _jaccard(r["jaccard"]), _int(r["entered"]), _int(r["exited"]))
    return [sizes, stability]


def _time_to_event(goal: dict, pyramid_map: PyramidMap) -> dict | None:
    """A time-to-event goal's horizon, and per arm its users, censored users and share within the horizon."""
    arms = {
        arm: {k: goal.pop(f"{arm}_{k}", None) for k in ("censored", "share_within")}
        | {"users": goal.pop(f"{arm}_users", None)}
        for arm in ("treatment", "holdout")
    }
    metric = pyramid_map.metrics.get(goal["metric"])
    if metric is None or metric.kind != "time_to_event":
        return None
    return {"horizon_days": metric.horizon_days, "anchor": metric.anchor, **arms}


def _cuped_narrowing(goal: dict) -> float | None:
    """How much narrower CUPED made the interval: 1 - its width / the unadjusted one's, on the log scale."""
    bounds = [goal["ci_low"], goal["ci_high"], goal["ci_low_unadjusted"], goal["ci_high_unadjusted"]]
    if any(b is None or b <= -1 for b in bounds):
        return None
    unadjusted = math.log1p(bounds[3]) - math.log1p(bounds[2])
    return 1 - (math.log1p(bounds[1]) - math.log1p(bounds[0])) / unadjusted if unadjusted > 0 else None


def _goals_table(goals: list[dict]) -> list[Table]:
    """Small tables, so that each fits 80 columns: the verdict, the arms and the lift, CUPED, the guardrails."""
    planted = any(g["planted"] is not None for g in goals)
    names = {"goal": [g["goal_id"] for g in goals]}
    verdict = _table(
        "Goals, campaign to date",
        ["goal", "metric", "kind", "target", "status", *(["planted"] if planted else [])],
        names={
            **names,
            "metric": [g["metric"] for g in goals],
            "kind": [_kind(g) for g in goals],
            "status": [g["status"] or "" for g in goals],
        },
    )
    arms = _table(
        "Treatment vs holdout (always-valid interval)",
        ["goal", "treatment", "holdout", "lift", "interval"],
        names=names,
    )
    guards = _table(
        "Guardrails beside their goal",
        ["goal", "guardrail", "rise", "interval", "margin", "status"],
        names={**names, "guardrail": [r["metric"] for g in goals for r in g.get("guardrails", [])]},
    )
    cuped = _table(
        "CUPED (pre-entry covariate): the interval against the unadjusted one",
        ["goal", "narrower by", "unadjusted interval"],
        names=names,
    )
    for g in goals:
        cuped.add_row(
            g["goal_id"],
            "" if g["narrower"] is None else f"{g['narrower']:.0%}",
            f"[{_signed(g['ci_low_unadjusted'])}, {_signed(g['ci_high_unadjusted'])}]",
        )
        verdict.add_row(
            g["goal_id"],
            g["metric"],
            _kind(g),
            _signed(g["target"]),
            _status(g["status"]),
            *([_signed(g["planted"])] if planted else []),
        )
        arms.add_row(
            g["goal_id"],
            _value(g["treatment"], g.get("kind", "share")),
            _value(g["holdout"], g.get("kind", "share")),
            _signed(g["lift"]),
            f"[{_signed(g['ci_low'])}, {_signed(g['ci_high'])}]",
        )
        for r in g.get("guardrails", []):
            guards.add_row(
                g["goal_id"],
                r["metric"],
                _signed(r["rise"]),
                f"[{_signed(r['ci_low'])}, {_signed(r['ci_high'])}]",
                _margin(r),
                _status(r["status"]),
            )
    timed = [g for g in goals if g.get("time_to_event")]
    return [verdict, arms, cuped, guards, *([_time_to_event_table(timed)] if timed else [])]


def _time_to_event_table(goals: list[dict]) -> Table:
    """Time-to-event goals: restricted mean time per arm, the share reaching the event and the users censored."""
    table = _table(
        "Time to event: restricted mean days to the horizon (treatment / holdout)",
        ["goal", "horizon", "mean days", "reached", "censored"],
        names={"goal": [g["goal_id"] for g in goals]},
    )
    for g in goals:
        t, h = g["time_to_event"]["treatment"], g["time_to_event"]["holdout"]
        table.add_row(
            g["goal_id"],
            f"{g['time_to_event']['horizon_days']} d",
            f"{_days(g['treatment'])} / {_days(g['holdout'])}",
            f"{_pct(t['share_within'])} / {_pct(h['share_within'])}",
            f"{_int(t['censored'])} of {_int(t['users'])} / {_int(h['censored'])} of {_int(h['users'])}",
        )
    return table


def _print_north_star(star: dict, console: Console) -> None:
    values = [r["value"] for r in star["series"] if r["value"] is not None]
    if not values:
        return
    series = star["series"]
    console.print(f"\n[bold]North Star[/bold] {star['id']} ({star['metric']}), {series[0]['ds']} → {series[-1]['ds']}")
    console.print(f"  {sparkline(values)}  {values[0]:.3f} → {values[-1]:.3f}")
    partial = sum(r.get("window_complete") is False for r in series)
    if partial:
        console.print(f"  [yellow]{partial} day(s) with the metric's window not yet covered by history (incomplete)[/]")
    for row in star["contributions"]:
        console.print(f"  {row['goal_id']:<20} {_contribution(row)}")
    if star.get("total"):
        console.print(f"  {'all campaigns':<20} {_contribution(star['total'])} (each user counted once)")


def segments_data(lake: Lake, as_of: date) -> dict | None:
    """`pyramid segments` as data: every segment's summary as of the day with its baseline ratio on each goal
    metric (segment rate / eligible rate, `segment_baselines`); None when the day has no summary."""
    summary_file = lake.partition_file("segments", "segment_summary", as_of)
    if not summary_file.exists():
        return None
    con = connect()
    summary = con.sql("SELECT * FROM read_parquet(?)", params=[str(summary_file)]).pl()
    for column, default, kind in OPTIONAL_SUMMARY_COLUMNS:  # partitions written before these columns existed
        if column not in summary.columns:
            summary = summary.with_columns(pl.lit(default, kind).alias(column))
    summary = summary.sort(
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
        "share": _pct(r["share"]),
        "usable": _usable(r["usable"]),
        "Jaccard": _jaccard(r["jaccard"]),
        "entered": _int(r["entered"]),
        "exited": _int(r["exited"]),
        "churn": _pct(r["churn_share"]),
        "median days": "—" if r["median_days_in_segment"] is None else f"{r['median_days_in_segment']:g}",
        "window": _window(r["window_complete"]),
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
            r["segment_id"], r["kind"], *_segment_cells(r).values(), *(_times(r["baselines"].get(m)) for m in metrics)
        )
    return table


def _segments_split(data: dict, as_of: date) -> list[Table]:
    rows, metrics = data["segments"], data["metrics"]
    names = {"segment": [r["segment_id"] for r in rows]}
    sizes = _table(
        f"Segments as of {as_of}: size and usability",
        ["segment", "kind", "method", "size", "share", "usable", "window"],
        names={**names, "kind": [r["kind"] for r in rows], "method": [r["method"] for r in rows]},
    )
    stability = _table(
        "Stability against the day before",
        ["segment", "Jaccard", "entered", "exited", "churn", "median days"],
        names=names,
    )
    codes = {m: f"M{i + 1}" for i, m in enumerate(metrics)}
    legend = "; ".join(f"{code} = {m}" for m, code in codes.items())
    baselines = _table(f"Baselines: segment rate / eligible rate ({legend})", ["segment", *codes.values()], names=names)
    for r in rows:
        cells = _segment_cells(r)
        sizes.add_row(
            r["segment_id"], r["kind"], r["method"], *(cells[c] for c in ("size", "share", "usable", "window"))
        )
        stability.add_row(
            r["segment_id"], *(cells[c] for c in ("Jaccard", "entered", "exited", "churn", "median days"))
        )
        baselines.add_row(r["segment_id"], *(_times(r["baselines"].get(m)) for m in metrics))
    return [sizes, stability, baselines] if metrics else [sizes, stability]


def _window(complete: object) -> str:
    """Whether history covers the windows a segment reads."""
    return "—" if complete is None else "full" if complete else "[yellow]partial[/]"


def _contribution(row: dict) -> str:
    """A contribution with its 95% interval, or not shown without one."""
    if row.get("ci_low") is None or row.get("contribution") is None:
        return "contribution not shown (no interval: an arm is empty)"
    low, high = row["ci_low"] * 100, row["ci_high"] * 100
    return f"contributes {_signed_points(row['contribution'])} (95% CI {low:+.2f} to {high:+.2f})"


def _usable(value: object) -> str:
    return "yes" if value else "[red]no[/red]"


def _jaccard(value: object) -> str:
    return "—" if value is None else f"{value:.3f}"


def _int(value: object) -> str:
    return "—" if value is None else f"{value:,}"


def _times(value: object) -> str:
    if value is None:
        return "—"
    colour = "green" if value >= 1.2 else "red" if value <= 1 / 1.2 else "white"
    return f"[{colour}]×{value:.2f}[/]"


def sparkline(values: list[float]) -> str:
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - low) / span * (len(SPARK) - 1) + 0.5))] for v in values)


def _planted_effects(lake: Lake) -> dict[str, float]:
    path = lake.landing / "_truth" / "planted_truth.json"
    if not path.exists():
        return {}
    truth = json.loads(path.read_text())
    campaigns = truth.get("campaigns", truth)
    # a time-to-event goal's lift should recover the true RMST change, not the planted time ratio
    return {
        c: (spec.get("time_to_event") or {}).get("rmst_relative_change", spec.get("relative_effect"))
        for c, spec in campaigns.items()
        if isinstance(spec, dict)
    }


def _days(value: object) -> str:
    return "—" if value is None else f"{value:.2f} d"


def _kind(goal: dict) -> str:
    """The metric's kind and the way it should move: `share ↑`, `ratio ↑`, `mean ↓`."""
    return f"{goal.get('kind', 'share')} {'↓' if goal.get('direction') == 'decrease' else '↑'}"


def _value(value: object, kind: str) -> str:
    """An arm's value: a share or ratio as a percentage, a mean as a number, a time to event in days."""
    if kind == "time_to_event":
        return _days(value)
    if kind == "mean" and value is not None:
        return f"{value:,.2f}"
    return _pct(value)


def _margin(guardrail: dict) -> str:
    """The harm a guardrail tolerates: a rise up to the margin, or (direction increase) a fall down to it."""
    if guardrail.get("direction") == "increase" and guardrail["margin"] is not None:
        return f"≥ {_signed(-guardrail['margin'])}"
    return f"≤ {_signed(guardrail['margin'])}"


def _pct(value: object) -> str:
    return "—" if value is None else f"{value:.2%}"


def _signed(value: object) -> str:
    return "—" if value is None else f"{value:+.1%}"


def _signed_points(value: object) -> str:
    return "—" if value is None else f"{value * 100:+.2f} points"


def _status(status: str | None) -> str:
    colours = {
        "met": "green",
        "ok": "green",
        "not_met": "red",
        "srm_fail": "red",
        "breached": "red",
        "blocked_by_guardrail": "red",
        "inconclusive": "yellow",
        "running": "blue",
    }
    return f"[{colours.get(status, 'white')}]{status}[/]"
