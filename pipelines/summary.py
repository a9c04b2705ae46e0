"""The end-of-run summary: the pyramid's counts per layer, its segments, goals and North Star."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from assets.lake import Lake, connect
from assets.pyramid_map import PyramidMap

SPARK = "▁▂▃▄▅▆▇█"


def print_summary(lake: Lake, pyramid_map: PyramidMap, console: Console) -> None:
    con = connect()
    print_erasure_requests(con, lake, console)
    if not lake.partitions("goals", "north_star"):
        console.print("[yellow]no materialized North Star yet: run `pyramid run` first[/yellow]")
        return
    as_of = lake.partitions("goals", "north_star")[-1]
    console.rule(f"[bold]{pyramid_map.program_name}[/bold] — the pyramid as of {as_of}")
    console.print(_layer_counts(con, lake, pyramid_map, as_of))
    console.print(_segments_table(con, lake, as_of))
    console.print(_goals_table(con, lake, as_of))
    _print_north_star(con, lake, pyramid_map, console)


def print_erasure_requests(con, lake: Lake, console: Console) -> None:
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
    console.print(f"[red]erasure requests: {len(rows)} cannot be honoured[/red] "
                  "(actionable/quarantine_erasure_requests; correct them at the source and re-run their day):")
    for source_file, line, reasons in rows[:20]:
        console.print(f"  {source_file}:{line} ({reasons})")


def _count(con, lake: Lake, layer: str, table: str, where: str = "") -> int:
    if not lake.partitions(layer, table):
        return 0
    sql = f"SELECT count(*) FROM read_parquet('{lake.glob(layer, table)}', hive_partitioning = true) {where}"
    return int(con.sql(sql).fetchall()[0][0])


def _layer_counts(con, lake: Lake, pyramid_map: PyramidMap, as_of) -> Table:
    day = f"WHERE ds = DATE '{as_of}'"
    raw = sum(_count(con, lake, "raw", s) for s in pyramid_map.sources)
    actionable = sum(_count(con, lake, "actionable", t) for t in ("events", "transactions"))
    quarantined = sum(_count(con, lake, "actionable", f"quarantine_{t}") for t in ("events", "transactions", "profiles"))
    users = _count(con, lake, "actionable", "user_features", day)
    memberships = _count(con, lake, "segments", "segment_membership", day)
    audience = _count(con, lake, "campaigns", "audiences", day)
    exports = sum(_count(con, lake, "touchpoints", t.id, day) for t in pyramid_map.touchpoints)
    table = Table(title="The pyramid, bottom to top", title_justify="left")
    for column in ("layer", "count", "what"):
        table.add_column(column, justify="right" if column == "count" else "left")
    table.add_row("raw data", f"{raw:,}", "rows landed, all sources, all days")
    table.add_row("actionable data", f"{actionable:,}", f"events and transactions promoted ({quarantined:,} quarantined)")
    table.add_row("users", f"{users:,}", f"known users with features on {as_of}")
    table.add_row("user segments", f"{len(pyramid_map.segments.definitions)}", f"{memberships:,} memberships")
    table.add_row("contexts & campaigns", f"{len(pyramid_map.campaigns)}", f"{audience:,} audience members")
    table.add_row("touchpoints", f"{len(pyramid_map.touchpoints)}", f"{exports:,} users exported for {as_of}")
    table.add_row("goals", f"{len(pyramid_map.goals)}", "measured treatment vs holdout")
    table.add_row("North Star", "1", f"{pyramid_map.north_star.id}: {pyramid_map.north_star.metric}")
    return table


def _segments_table(con, lake: Lake, as_of) -> Table:
    rows = con.sql(
        f"SELECT segment_id, kind, size, share, usable, jaccard, entered, exited "
        f"FROM read_parquet('{lake.glob('segments', 'segment_summary')}', hive_partitioning = true, union_by_name = true) "
        f"WHERE ds = DATE '{as_of}' ORDER BY size DESC"
    ).fetchall()
    table = Table(title=f"Segments as of {as_of}", title_justify="left")
    for column in ("segment", "kind", "size", "share", "usable", "stability (Jaccard)", "entered", "exited"):
        table.add_column(column, justify="left" if column in ("segment", "kind") else "right")
    for seg, kind, size, share, usable, jaccard, entered, exited in rows:
        table.add_row(seg, kind, f"{size:,}", f"{share:.1%}", "yes" if usable else "[red]no[/red]",
                      "—" if jaccard is None else f"{jaccard:.3f}", f"{entered or 0:,}", f"{exited or 0:,}")
    return table


def segments_report(lake: Lake, as_of) -> Table | None:
    """`pyramid segments`: every segment's summary as of the day, with its baseline on each goal metric
    (segment rate / eligible rate, `segment_baselines`). Reads the lake only (no Dagster, no GX)."""
    con = connect()
    summary_file = lake.partition_file("segments", "segment_summary", as_of)
    if not summary_file.exists():
        return None
    summary = con.sql("SELECT * FROM read_parquet(?) ORDER BY method <> 'rule', method, size DESC, segment_id",
                      params=[str(summary_file)]).pl() if _has_column(con, summary_file, "method") else \
        con.sql("SELECT *, 'rule' AS method, NULL::DOUBLE AS churn_share, NULL::DOUBLE AS median_days_in_segment "
                "FROM read_parquet(?) ORDER BY size DESC", params=[str(summary_file)]).pl()
    baselines_file = lake.partition_file("segments", "segment_baselines", as_of)
    ratios: dict[tuple[str, str], float | None] = {}
    metrics: list[str] = []
    if baselines_file.exists():
        for segment_id, metric, ratio in con.sql("SELECT segment_id, metric, ratio FROM read_parquet(?)",
                                                 params=[str(baselines_file)]).fetchall():
            ratios[(segment_id, metric)] = ratio
            if metric not in metrics:
                metrics.append(metric)
    table = Table(title=f"Segments as of {as_of} (baselines: segment rate / eligible rate)", title_justify="left")
    headers = ["segment", "kind", "size", "share", "usable", "Jaccard", "entered", "exited", "churn", "median days",
               *metrics]
    for column in headers:
        table.add_column(column, justify="left" if column in ("segment", "kind") else "right")
    for row in summary.iter_rows(named=True):
        cells = [
            row["segment_id"], row["kind"], f"{row['size']:,}", _pct(row["share"]),
            "yes" if row["usable"] else "[red]no[/red]",
            "—" if row["jaccard"] is None else f"{row['jaccard']:.3f}",
            _int(row["entered"]), _int(row["exited"]), _pct(row["churn_share"]),
            "—" if row["median_days_in_segment"] is None else f"{row['median_days_in_segment']:g}",
        ]
        cells += [_times(ratios.get((row["segment_id"], m))) for m in metrics]
        table.add_row(*cells)
    return table


def _has_column(con, path, column: str) -> bool:
    return column in con.sql("SELECT * FROM read_parquet(?) LIMIT 0", params=[str(path)]).columns


def _int(value) -> str:
    return "—" if value is None else f"{value:,}"


def _times(value) -> str:
    if value is None:
        return "—"
    colour = "green" if value >= 1.2 else "red" if value <= 1 / 1.2 else "white"
    return f"[{colour}]×{value:.2f}[/]"


def _goals_table(con, lake: Lake, as_of) -> Table:
    truth = _planted_effects(lake)
    rows = con.sql(
        f"SELECT goal_id, metric, treatment_value, holdout_value, lift, ci_low, ci_high, target, status, campaign_id "
        f"FROM read_parquet('{lake.glob('goals', 'goal_metrics')}', hive_partitioning = true) "
        f"WHERE ds = DATE '{as_of}' AND \"window\" = 'to_date' AND kind = 'goal' ORDER BY goal_id"
    ).fetchall()
    table = Table(title="Goals, campaign to date: treatment vs holdout", title_justify="left")
    for column in ("goal (metric)", "treatment", "holdout", "lift [95% CI]", "target", "status"):
        table.add_column(column, justify="left" if column in ("goal (metric)", "status") else "right")
    if truth:
        table.add_column("planted", justify="right")
    for goal, metric, t, h, lift, lo, hi, target, status, campaign in rows:
        cells = [f"{goal} ({metric})", _pct(t), _pct(h), f"{_signed(lift)} [{_signed(lo)}, {_signed(hi)}]",
                 _signed(target), _status(status)]
        if truth:
            cells.append(_signed(truth.get(campaign)))
        table.add_row(*cells)
    return table


def _print_north_star(con, lake: Lake, pyramid_map: PyramidMap, console: Console) -> None:
    series = con.sql(
        f"SELECT ds, value FROM read_parquet('{lake.glob('goals', 'north_star')}', hive_partitioning = true) ORDER BY ds"
    ).fetchall()
    values = [v for _, v in series if v is not None]
    if not values:
        return
    console.print(f"\n[bold]North Star[/bold] {pyramid_map.north_star.id} ({pyramid_map.north_star.metric}), "
                  f"{series[0][0]} → {series[-1][0]}")
    console.print(f"  {sparkline(values)}  {values[0]:.3f} → {values[-1]:.3f}")
    contributions = con.sql(
        f"SELECT goal_id, contribution FROM read_parquet('{lake.glob('goals', 'north_star_contributions')}', "
        f"hive_partitioning = true) WHERE ds = (SELECT max(ds) FROM read_parquet('{lake.glob('goals', 'north_star')}', "
        f"hive_partitioning = true)) ORDER BY goal_id"
    ).fetchall() if lake.partitions("goals", "north_star_contributions") else []
    for goal, contribution in contributions:
        console.print(f"  {goal:<20} contributes {_signed_points(contribution)}")


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
    return {c: spec.get("relative_effect") for c, spec in campaigns.items() if isinstance(spec, dict)}


def _pct(value) -> str:
    return "—" if value is None else f"{value:.2%}"


def _signed(value) -> str:
    return "—" if value is None else f"{value:+.1%}"


def _signed_points(value) -> str:
    return "—" if value is None else f"{value * 100:+.2f} points"


def _status(status: str | None) -> str:
    colours = {"met": "green", "not_met": "red", "srm_fail": "red", "inconclusive": "yellow"}
    return f"[{colours.get(status, 'white')}]{status}[/]"
