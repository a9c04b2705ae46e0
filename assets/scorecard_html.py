"""The scorecard's HTML pieces: escaping, tables, figures, signed percentages and status labels."""

from __future__ import annotations

import html

STATUS_CLASS = {
    "met": "ok",
    "ok": "ok",
    "not_met": "bad",
    "breached": "bad",
    "srm_fail": "bad",
    "inconclusive": "warn",
    "no_data": "muted",
    "aa_ok": "ok",
    "aa_failed": "bad",
}


def e(value: object) -> str:
    return html.escape(str(value))


def table(headers: list[str], rows: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def figure(name: str, svg: str) -> str:
    return f'<figure class="chart" data-chart="{e(name)}">{svg}</figure>'


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1%}"


def status(status: str) -> str:
    return f'<span class="{STATUS_CLASS.get(status, "")}">{e(status)}</span>'
