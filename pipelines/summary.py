"""The end-of-run summary: the pyramid's counts per layer, its segments, goals and North Star.

Each report is data first (`summary_data`, and `segments_data` in pipelines/segments_report.py: plain dicts,
what `--json` prints), then tables (pipelines/cells.py) that fit an 80- to 120-column terminal without
cutting a name: name columns never shrink below their longest name, other cells wrap (`overflow="fold"`,
never "…"), wide reports are split into several narrower tables, and long metric names become short
headers with a legend.
"""

from __future__ import annotations

import json
import math
from datetime import date

import duckdb
import polars as pl
from rich.console import Console
from rich.table import Table

from assets.campaigns import admitted_by_context, deciding_contexts
from assets.lake import Lake, connect, read_partition
from assets.north_star import total_contribution
from assets.privacy_decisions import decision_lines
from assets.pyramid_map import PyramidMap
from assets.scorecard import layer_counts, read
from assets.snapshots import read_day
from pipelines import cells
from pipelines.segments_report import OPTIONAL_SUMMARY_COLUMNS, with_optional

SPARK = "▁▂▃▄▅▆▇█"
AA_CHECK = "A/A check"  # the target cell of an A/A campaign's goal: nobody was treated, no target applies
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
    if "erasure_requests" in pyramid_map.sources:  # a left-out source is named among the decision lines
        print_erasure_requests(connect(), lake, console)
    if not data:
        console.print("[yellow]no materialized North Star yet: run `pyramid run` first[/yellow]")
        return
    console.rule(f"[bold]{pyramid_map.program_name}[/bold] — the pyramid as of {data['as_of']}")
    console.print(_layers_table(data["layers"]))
    for line in decision_lines(lake, pyramid_map, data["as_of"]):  # left-out sources, privacy decisions
        console.print(line, highlight=False)
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
        with_optional(goal_rows, OPTIONAL_GOAL_COLUMNS)
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
        goal["aa"] = _aa_campaign(pyramid_map, goal["campaign_id"])
        goal["guardrails"] = guardrails.get(goal["goal_id"], [])
        for guardrail in goal["guardrails"]:
            metric = pyramid_map.metrics.get(guardrail["metric"])
            guardrail["direction"] = metric.guardrail_direction() if metric else "decrease"
    star = with_optional(read(con, lake, "goals", "north_star"), OPTIONAL_STAR_COLUMNS)
    star = star.select("ds", "value", "window_complete").sort("ds")
    contributions = read(con, lake, "goals", "north_star_contributions", day)
    if contributions.height:
        contributions = with_optional(contributions, OPTIONAL_CONTRIBUTION_COLUMNS)
        contributions = contributions.select("goal_id", "campaign_id", "contribution", "ci_low", "ci_high")
    return {
        "program": pyramid_map.program_name,
        "as_of": as_of,
        "layers": [
            {"layer": layer, "count": n, "what": what} for layer, n, what in layer_counts(con, lake, pyramid_map, as_of)
        ],
        "segments": with_optional(read(con, lake, "segments", "segment_summary", day), OPTIONAL_SUMMARY_COLUMNS)
        .select("segment_id", "kind", "size", "share", "usable", "jaccard", "entered", "exited", "window_complete")
        .sort(["size", "segment_id"], descending=[True, False])
        .to_dicts(),
        "contexts": contexts_admitted(lake, pyramid_map, as_of),
        "goals": goals,
        "north_star": {
            "id": pyramid_map.north_star.id,
            "metric": pyramid_map.north_star.metric,
            "series": star.to_dicts(),
            "contributions": [
                {**row, "aa": _aa_campaign(pyramid_map, row["campaign_id"])}
                for row in (contributions.sort("goal_id").to_dicts() if contributions.height else [])
            ],
            "total": _total_contribution(contributions),
        },
    }


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
    audiences = read_day(lake, "campaigns", "audiences", as_of)
    admitted = admitted_by_context(membership, audiences, pyramid_map.campaigns)
    return [{"campaign_id": campaign_id, **row} for campaign_id, row in admitted.items()]


def _contexts_table(rows: list[dict]) -> Table:
    table = cells.grid(
        "Contexts: the share of each campaign's segment members they admit",
        ["campaign", "members", "admitted", "share", "per context"],
        names={"campaign": [r["campaign_id"] for r in rows]},
        left=("per context",),
    )
    for r in rows:
        per_context = ", ".join(f"{c} {n:,}" for c, n in r["per_context"].items())
        table.add_row(
            r["campaign_id"],
            f"{r['segment_members']:,}",
            f"{r['admitted']:,}",
            cells.pct(r["admitted_share"]),
            per_context,
        )
    return table


def _layers_table(layers: list[dict]) -> Table:
    table = cells.grid(
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
    sizes = cells.grid(
        f"Segments as of {as_of}",
        ["segment", "kind", "size", "share", "usable", "window"],
        names={**names, "kind": [r["kind"] for r in rows]},
    )
    stability = cells.grid("Stability against the day before", ["segment", "Jaccard", "entered", "exited"], names=names)
    for r in rows:
        sizes.add_row(
            r["segment_id"],
            r["kind"],
            f"{r['size']:,}",
            cells.pct(r["share"]),
            cells.usable(r["usable"]),
            cells.window(r["window_complete"]),
        )
        stability.add_row(
            r["segment_id"], cells.jaccard(r["jaccard"]), cells.count(r["entered"]), cells.count(r["exited"])
        )
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
    verdict = cells.grid(
        "Goals, campaign to date",
        ["goal", "metric", "kind", "target", "status", *(["planted"] if planted else [])],
        names={
            **names,
            "metric": [g["metric"] for g in goals],
            "kind": [_kind(g) for g in goals],
            "status": [g["status"] or "" for g in goals],
        },
    )
    arms = cells.grid(
        "Treatment vs holdout (always-valid interval)",
        ["goal", "treatment", "holdout", "lift", "interval"],
        names=names,
    )
    guards = cells.grid(
        "Guardrails beside their goal",
        ["goal", "guardrail", "rise", "interval", "margin", "status"],
        names={**names, "guardrail": [r["metric"] for g in goals for r in g.get("guardrails", [])]},
    )
    cuped = cells.grid(
        "CUPED (pre-entry covariate): the interval against the unadjusted one",
        ["goal", "narrower by", "unadjusted interval"],
        names=names,
    )
    for g in goals:
        cuped.add_row(
            g["goal_id"],
            "" if g["narrower"] is None else f"{g['narrower']:.0%}",
            f"[{cells.signed(g['ci_low_unadjusted'])}, {cells.signed(g['ci_high_unadjusted'])}]",
        )
        verdict.add_row(
            g["goal_id"],
            g["metric"],
            _kind(g),
            AA_CHECK if g.get("aa") else cells.signed(g["target"]),
            cells.status(g["status"]),
            *([cells.signed(g["planted"])] if planted else []),
        )
        arms.add_row(
            g["goal_id"],
            _value(g["treatment"], g.get("kind", "share")),
            _value(g["holdout"], g.get("kind", "share")),
            cells.signed(g["lift"]),
            f"[{cells.signed(g['ci_low'])}, {cells.signed(g['ci_high'])}]",
        )
        for r in g.get("guardrails", []):
            guards.add_row(
                g["goal_id"],
                r["metric"],
                cells.signed(r["rise"]),
                f"[{cells.signed(r['ci_low'])}, {cells.signed(r['ci_high'])}]",
                _margin(r),
                cells.status(r["status"]),
            )
    timed = [g for g in goals if g.get("time_to_event")]
    return [verdict, arms, cuped, guards, *([_time_to_event_table(timed)] if timed else [])]


def _time_to_event_table(goals: list[dict]) -> Table:
    """Time-to-event goals: restricted mean time per arm, the share reaching the event and the users censored."""
    table = cells.grid(
        "Time to event: restricted mean days to the horizon (treatment / holdout)",
        ["goal", "horizon", "mean days", "reached", "censored"],
        names={"goal": [g["goal_id"] for g in goals]},
    )
    for g in goals:
        t, h = g["time_to_event"]["treatment"], g["time_to_event"]["holdout"]
        table.add_row(
            g["goal_id"],
            f"{g['time_to_event']['horizon_days']} d",
            f"{cells.days(g['treatment'])} / {cells.days(g['holdout'])}",
            f"{cells.pct(t['share_within'])} / {cells.pct(h['share_within'])}",
            " / ".join(f"{cells.count(arm['censored'])} of {cells.count(arm['users'])}" for arm in (t, h)),
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
        console.print(f"  {row['goal_id']:<20} {_contribution(row)}{' (A/A check)' if row.get('aa') else ''}")
    if star.get("total"):
        console.print(f"  {'all campaigns':<20} {_contribution(star['total'])} (each user counted once)")


def _contribution(row: dict) -> str:
    """A contribution with its 95% interval, or not shown without one."""
    if row.get("ci_low") is None or row.get("contribution") is None:
        return "contribution not shown (no interval: an arm is empty)"
    low, high = row["ci_low"] * 100, row["ci_high"] * 100
    return f"contributes {cells.signed_points(row['contribution'])} (95% CI {low:+.2f} to {high:+.2f})"


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


def _aa_campaign(pyramid_map: PyramidMap, campaign_id: str) -> bool:
    """Whether the campaign is an A/A test (`treated: false`): its goal is a check of the split, not a verdict."""
    return any(c.id == campaign_id and not c.treated for c in pyramid_map.campaigns)


def _kind(goal: dict) -> str:
    """The metric's kind and the way it should move: `share ↑`, `ratio ↑`, `mean ↓`."""
    return f"{goal.get('kind', 'share')} {'↓' if goal.get('direction') == 'decrease' else '↑'}"


def _value(value: object, kind: str) -> str:
    """An arm's value: a share or ratio as a percentage, a mean as a number, a time to event in days."""
    if kind == "time_to_event":
        return cells.days(value)
    if kind == "mean" and value is not None:
        return f"{value:,.2f}"
    return cells.pct(value)


def _margin(guardrail: dict) -> str:
    """The harm a guardrail tolerates: a rise up to the margin, or (direction increase) a fall down to it."""
    if guardrail.get("direction") == "increase" and guardrail["margin"] is not None:
        return f"≥ {cells.signed(-guardrail['margin'])}"
    return f"≤ {cells.signed(guardrail['margin'])}"
