"""The scorecard's goals section: per goal, the lift to date with its always-valid interval, status and guardrails.

A goal of an A/A campaign (`treated: false`) is headed "A/A check": nobody was treated, so its interval should cover
zero (`aa_ok`) and no target applies.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

import polars as pl

from assets import charts
from assets.scorecard_html import e, figure, signed, status, table


def goals_section(goals: pl.DataFrame, as_of: date, aa_campaigns: Collection[str] = ()) -> str:
    """Per goal: its heading and verdict, the lift chart with its band, and its guardrails on `as_of`."""
    if goals.is_empty():
        return '<section id="goals"><h2>Goals</h2><p class="muted">no goal metrics yet</p></section>'
    parts = []
    for (goal_id,), rows in goals.group_by("goal_id", maintain_order=True):
        goal = rows.filter(pl.col("kind") == "goal")
        last = goal.filter(pl.col("ds") == as_of).row(0, named=True) if goal.height else None
        points = list(zip(goal["ds"].to_list(), goal["lift"].to_list()))
        band = list(zip(goal["ds"].to_list(), goal["ci_low"].to_list(), goal["ci_high"].to_list()))
        aa = goal.height > 0 and goal["campaign_id"][-1] in aa_campaigns
        target = goal["target"].drop_nulls()
        lines = {"target": float(target[-1])} if len(target) and not aa else {}
        lines["no effect"] = 0.0
        chart = charts.line_chart(
            {"lift": points},
            f"{goal_id}: lift to date, always-valid interval",
            "relative lift",
            bands={"lift": band},
            hlines=lines,
            percent=True,
            ylim=_lift_range(band, lines),
        )
        guards = rows.filter((pl.col("kind") == "guardrail") & (pl.col("ds") == as_of))
        guard_rows = [
            [
                e(g["metric"]),
                signed(g["lift"]),
                f"[{signed(g['ci_low'])}, {signed(g['ci_high'])}]",
                status(g["status"]),
            ]
            for g in guards.iter_rows(named=True)
        ]
        head = _heading(goal_id, last, aa)
        parts.append(
            f'<div class="goal">{head}<div class="grid">{figure(f"goal_{goal_id}", chart)}'
            f"<div><h3>Guardrails</h3>{table(['metric', 'lift', 'interval', 'status'], guard_rows)}</div>"
            "</div></div>"
        )
    return '<section id="goals"><h2>Goals, campaign to date</h2>' + "".join(parts) + "</section>"


def _heading(goal_id: str, last: dict | None, aa: bool) -> str:
    """The goal's name, metric, campaign and status; its lift, interval, target (or "A/A check") and arms."""
    if last is None:
        return f'<h3 data-goal="{e(goal_id)}">{e(goal_id)}</h3>'
    aim = "A/A check: nobody treated, the interval should cover zero" if aa else f"target {signed(last['target'])}"
    return (
        f'<h3 data-goal="{e(goal_id)}">{e(goal_id)} ({e(last["metric"])}, campaign '
        f"{e(last['campaign_id'])}): {status(last['status'])}</h3>"
        f"<p>lift {signed(last['lift'])} [{signed(last['ci_low'])}, {signed(last['ci_high'])}], "
        f"{aim}; arms {last['treatment_users'] or 0:,} treatment / "
        f"{last['holdout_users'] or 0:,} holdout; sample ratio "
        f"{_srm(last['srm_ok'], last['srm_p_value'])}</p>"
    )


def _lift_range(band: list[tuple], lines: dict[str, float]) -> tuple[float, float] | None:
    """The y range of a lift chart: the later half of the interval band and the lines, so that the wide
    intervals of the first days do not flatten the rest (they are clipped at the chart's edge)."""
    later = [v for _, lo, hi in band[len(band) // 2 :] for v in (lo, hi) if v is not None]
    values = later + list(lines.values())
    if not later:
        return None
    low, high = min(values), max(values)
    pad = 0.1 * ((high - low) or 1.0)
    return low - pad, high + pad


def _srm(ok: bool | None, p_value: float | None) -> str:
    if ok is None:
        return '<span class="muted">not measured</span>'
    p = "" if p_value is None else f" (p = {p_value:.3g})"
    return f'<span class="{"ok" if ok else "bad"}">{"ok" if ok else "mismatch"}{p}</span>'
