"""Terminal cells of the reports: compact tables and the formatting of their values (rich markup)."""

from __future__ import annotations

from rich import box
from rich.table import Table


def grid(
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


def pct(value: object) -> str:
    return "—" if value is None else f"{value:.2%}"


def count(value: object) -> str:
    return "—" if value is None else f"{value:,}"


def signed(value: object) -> str:
    return "—" if value is None else f"{value:+.1%}"


def signed_points(value: object) -> str:
    return "—" if value is None else f"{value * 100:+.2f} points"


def status(status: str | None) -> str:
    colours = {
        "met": "green",
        "ok": "green",
        "not_met": "red",
        "srm_fail": "red",
        "breached": "red",
        "blocked_by_guardrail": "red",
        "inconclusive": "yellow",
        "running": "blue",
        "aa_ok": "green",
        "aa_failed": "red",
    }
    return f"[{colours.get(status, 'white')}]{status}[/]"


def days(value: object) -> str:
    return "—" if value is None else f"{value:.2f} d"


def times(value: object) -> str:
    if value is None:
        return "—"
    colour = "green" if value >= 1.2 else "red" if value <= 1 / 1.2 else "white"
    return f"[{colour}]×{value:.2f}[/]"


def usable(value: object) -> str:
    return "yes" if value else "[red]no[/red]"


def jaccard(value: object) -> str:
    return "—" if value is None else f"{value:.3f}"


def window(complete: object) -> str:
    """Whether history covers the windows a segment reads."""
    return "—" if complete is None else "full" if complete else "[yellow]partial[/]"
