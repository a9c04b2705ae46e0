"""The nightly benchmark's report: Markdown tables and issue 11's targets from a measures dict.

The measures are what `bench_nightly.py` writes with `--json`: `tiny` and `sizes` (one nightly day each),
`history` (the same pipeline on top of several lengths of history, and the lake's storage), optionally
`demo_seconds`. Pure functions: no measuring here, so a fake dict tests them (tests/test_bench_report.py).
"""

from __future__ import annotations

from statistics import mean

MiB = 2**20
R_TARGET, PEAK_TARGET_MIB, HISTORY_TARGET, DEMO_TARGET_S = 5.0, 3 * 1024, 1.2, 60.0
TARGET_USERS = 1_000_000
HISTORY_DAYS = 90
ERASURE_SLACK_S = 1.0  # a step's own overhead in Dagster (start, metadata, events): not erasure work
GROWTH_FACTOR = 1.5  # rows a day growing this much faster than the landed rows: the table grows with days x users
PER_USER_COPY = (0.8, 1.2)  # rows a day per user in this band: a copy of every user a day


def merge(parts: list[dict]) -> dict:
    """One measures dict from several runs' (later sizes replace earlier ones of the same users)."""
    merged: dict = {"conditions": [], "settings": {}, "tiny": None, "sizes": [], "history": None}
    by_users: dict[int, dict] = {}
    for part in parts:
        merged["conditions"].append(part.get("conditions", ""))
        merged["settings"].update(part.get("settings", {}))
        for size in part.get("sizes", []) + ([part["size"]] if part.get("size") else []):
            by_users[size["users"]] = size
        for key in ("tiny", "history", "demo_seconds"):
            if part.get(key) is not None:
                merged[key] = part[key]
    merged["sizes"] = [by_users[users] for users in sorted(by_users)]
    merged["conditions"] = "; ".join(c for c in merged["conditions"] if c)
    return merged


def _table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    """A Markdown table; the first `left` columns align left, the others (numbers) right."""
    align = ["---"] * left + ["---:"] * (len(headers) - left)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _s(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds:,.2f}"


def r_value(size: dict, tiny: dict | None, field: str = "wall") -> float | None:
    """R = (pipeline - fixed cost) / floor, on wall time or on CPU time."""
    if tiny is None or not size["floor"].get(field):
        return None
    return (size["run"][field] - tiny["run"][field]) / size["floor"][field]


def summary_table(measures: dict) -> str:
    """One row per size: the day's events, the pipeline's and the floor's time, peak memory, R."""
    tiny = measures.get("tiny")
    rows = []
    for size in ([tiny] if tiny else []) + measures["sizes"]:
        run, floor = size["run"], size["floor"]
        is_tiny = size is tiny
        r, r_cpu = (None, None) if is_tiny else (r_value(size, tiny), r_value(size, tiny, "cpu"))
        rows.append(
            [
                f"{size['users']:,}" + (" (fixed cost)" if is_tiny else ""),
                f"{size['landed'].get('events', 0):,}",
                _s(run["wall"]),
                _s(run["cpu"]),
                f"{run['peak_mib']:,.0f}",
                _s(floor["wall"]),
                _s(floor["cpu"]),
                "—" if r is None else f"{r:.1f}",
                "—" if r_cpu is None else f"{r_cpu:.1f}",
                _settings(size),
            ]
        )
    headers = ["users", "events", "pipeline s", "CPU s", "peak MiB", "floor s", "floor CPU s", "R", "R (CPU)", "DuckDB"]
    return _table(headers, rows)


def _settings(size: dict) -> str:
    """The DuckDB memory limit and threads of a size's runs."""
    settings = size.get("settings", {})
    limit = settings.get("PYRAMID_DUCKDB_MEMORY_LIMIT", "default")
    return f"{limit}, {settings.get('PYRAMID_DUCKDB_THREADS', 'default')} threads"


def step_table(size: dict, tiny: dict | None) -> str:
    """Per step, slowest first: wall, CPU, peak RSS, rows, and the wall time above the tiny day's."""
    run, floor = size["run"], size["floor"]
    fixed = (tiny or {}).get("run", {}).get("steps", {})
    rows = []
    for step, m in sorted(run["steps"].items(), key=lambda kv: -kv[1].get("wall", 0)):
        above = m.get("wall", 0) - fixed[step]["wall"] if step in fixed else None
        rows.append(
            [
                f"`{step}`",
                _s(m.get("wall")),
                _s(m.get("cpu")),
                f"{m.get('peak_mib', 0):,.0f}",
                f"{m.get('rows', 0):,}",
                _s(above),
            ]
        )
    stepped = sum(m.get("wall", 0) for m in run["steps"].values())
    rows.append(["outside steps: imports, definitions, run bookkeeping", _s(run["wall"] - stepped), "", "", "", ""])
    rows.append(["**the run's process**", _s(run["wall"]), _s(run["cpu"]), f"{run['peak_mib']:,.0f}", "", ""])
    rows.append(
        ["floor statement", _s(floor["wall"]), _s(floor["cpu"]), f"{floor['peak_mib']:,.0f}", f"{floor['rows']:,}", ""]
    )
    return _table(["step", "wall s", "CPU s", "peak MiB", "rows", "wall above fixed s"], rows)


def size_section(size: dict, tiny: dict | None) -> str:
    landed = ", ".join(f"{k} {v:,}" for k, v in size["landed"].items())
    lines = [
        f"### {size['users']:,} users: day {size['day']} on {size['history_days']} day(s) of history",
        "",
        f"Landed that day: {landed}. Generating took {size['generate_s']:.0f} s, the history "
        f"{size['history_s']:.0f} s; runs (s): {', '.join(f'{w:.1f}' for w in size['runs_wall'])}; "
        f"imports and definitions {size['run']['import_wall']:.1f} s.",
        "",
        step_table(size, tiny),
    ]
    r = r_value(size, tiny)
    if r is not None and tiny is not None and size is not tiny:
        run, floor, fixed = size["run"], size["floor"], tiny["run"]
        lines += [
            "",
            f"R = ({run['wall']:.2f} - {fixed['wall']:.2f}) / {floor['wall']:.2f} = {r:.1f} "
            f"(CPU: ({run['cpu']:.2f} - {fixed['cpu']:.2f}) / {floor['cpu']:.2f} = {r_value(size, tiny, 'cpu'):.1f})",
        ]
    return "\n".join(lines)


def _landed_rows(point: dict) -> int:
    return point["landed"].get("events", 0) + point["landed"].get("transactions", 0)


def history_ratio(history: dict) -> dict | None:
    """The longest history against the shortest: ratios of wall and CPU time, raw and per landed row."""
    points = sorted(history["points"], key=lambda p: p["history_days"])
    if len(points) < 2:
        return None
    short, long = points[0], points[-1]
    rows = _landed_rows(long) / max(1, _landed_rows(short))
    wall = long["run"]["wall"] / short["run"]["wall"]
    cpu = long["run"]["cpu"] / short["run"]["cpu"]
    return {
        "short": short["history_days"],
        "long": long["history_days"],
        "rows": rows,
        "wall": wall,
        "cpu": cpu,
        "wall_per_row": wall / rows,
        "cpu_per_row": cpu / rows,
    }


def history_section(history: dict) -> str:
    points = sorted(history["points"], key=lambda p: p["history_days"])
    rows = [
        [
            str(p["history_days"]),
            p["day"],
            f"{_landed_rows(p):,}",
            f"{p['landed'].get('erasure_requests', 0):,}",
            _s(p["run"]["wall"]),
            _s(p["run"]["cpu"]),
            f"{p['run']['peak_mib']:,.0f}",
        ]
        for p in points
    ]
    lines = [
        f"### The same pipeline on top of {' and '.join(str(p['history_days']) for p in points)} days of history "
        f"({history['users']:,} users)",
        "",
        _table(
            ["history days", "day", "events + transactions", "erasure requests", "wall s", "CPU s", "peak MiB"], rows
        ),
    ]
    ratio = history_ratio(history)
    if ratio:
        lines += [
            "",
            f"{ratio['long']} against {ratio['short']} days: wall x{ratio['wall']:.2f}, CPU x{ratio['cpu']:.2f}; "
            f"the day's landed rows x{ratio['rows']:.2f}, so per landed row: wall x{ratio['wall_per_row']:.2f}, "
            f"CPU x{ratio['cpu_per_row']:.2f}.",
            "",
            "The steps whose CPU time grew most:",
            "",
            _table(["step", *(f"CPU s on {p['history_days']} days" for p in points), "difference s"], _growth(points)),
        ]
    return "\n".join(lines)


def _growth(points: list[dict], top: int = 8) -> list[list[str]]:
    short, long = points[0]["run"]["steps"], points[-1]["run"]["steps"]
    grown = sorted(long, key=lambda s: -(long[s].get("cpu", 0) - short.get(s, {}).get("cpu", 0)))[:top]
    return [
        [f"`{s}`", *(_s(p["run"]["steps"].get(s, {}).get("cpu")) for p in points), _s(long[s]["cpu"] - short[s]["cpu"])]
        for s in grown
        if s in short
    ]


def storage_growth(storage: dict, landed_by_day: dict, users: int) -> list[dict]:
    """Per table: partitions, bytes, rows, and whether its rows a day follow the landed rows, grow with the days
    (cumulative) or copy every user every day (about one row per user a day: days x users as well)."""
    result = []
    for table, by_day in sorted(storage.items()):
        days = sorted(d for d in by_day if d != "-")
        total_bytes = sum(b for b, _ in by_day.values())
        total_rows = sum(r for _, r in by_day.values())
        entry = {"table": table, "partitions": len(days), "bytes": total_bytes, "rows": total_rows, "grows": None}
        if len(days) >= 22:
            # the newest day is left out: a snapshot table keeps it in full (assets/snapshots.py), the days below it
            # as deltas on it, so it tells how the table is stored, not how it grows
            early, late = days[7:14], days[-8:-1]
            rows_growth = mean(by_day[d][1] for d in late) / max(1.0, mean(by_day[d][1] for d in early))
            landed = mean(landed_by_day.get(d, 0) for d in late) / max(
                1.0, mean(landed_by_day.get(d, 0) for d in early)
            )
            entry["rows_a_day"] = (mean(by_day[d][1] for d in early), mean(by_day[d][1] for d in late))
            entry["bytes_a_day"] = (mean(by_day[d][0] for d in early), mean(by_day[d][0] for d in late))
            entry["growth"] = rows_growth / max(landed, 1e-9)
            entry["per_user"] = entry["rows_a_day"][1] / users
            copies = PER_USER_COPY[0] <= entry["per_user"] <= PER_USER_COPY[1]
            cumulative = entry["growth"] > GROWTH_FACTOR
            entry["grows"] = "days x users" if cumulative else "days x users (a row per user)" if copies else "activity"
        elif not days:
            entry["grows"] = "one copy (not per day)"
        result.append(entry)
    return result


def storage_section(history: dict) -> str:
    growth = storage_growth(history["storage"], history["landed_by_day"], history["users"])
    rows = []
    for e in growth:
        early, late = e.get("rows_a_day", (None, None)), e.get("bytes_a_day", (None, None))
        rows.append(
            [
                f"`{e['table']}`",
                str(e["partitions"]),
                f"{e['bytes'] / MiB:,.1f}",
                f"{e['rows']:,}",
                "—" if early[0] is None else f"{early[0]:,.0f} → {early[1]:,.0f}",
                "—" if late[0] is None else f"{late[0] / 1024:,.0f} → {late[1] / 1024:,.0f}",
                "—" if e.get("growth") is None else f"x{e['growth']:.2f}",
                "—" if e.get("per_user") is None else f"{e['per_user']:.2f}",
                e["grows"] or "too few days",
            ]
        )
    total = sum(e["bytes"] for e in growth)
    headers = ["table", "days", "MiB", "rows", "rows a day: 2nd week → last week", "KiB a day: same",
               "growth beyond activity", "rows a day per user", "grows with"]  # fmt: skip
    return "\n".join(
        [
            f"### Storage of the lake after {max((e['partitions'] for e in growth), default=0)} days "
            f"({history['users']:,} users): {total / MiB:,.1f} MiB",
            "",
            "Rows a day of the second week against the last week before the newest day, divided by the same ratio of "
            "the landed rows "
            f"(events, transactions, profiles, requests): above {GROWTH_FACTOR} the table grows with days x users. "
            f"A table of {PER_USER_COPY[0]}-{PER_USER_COPY[1]} rows a day per user of the sample copies every user "
            "every day: it grows with days x users too.",
            "",
            _table(headers, rows),
        ]
    )


def _size(measures: dict, users: int) -> dict | None:
    return next((s for s in measures["sizes"] if s["users"] == users), None)


def _above_fixed(size: dict, tiny: dict | None, top: int = 3) -> str:
    fixed = (tiny or {}).get("run", {}).get("steps", {})
    above = {s: m.get("cpu", 0) - fixed.get(s, {}).get("cpu", 0) for s, m in size["run"]["steps"].items()}
    return ", ".join(f"`{s}` {c:.1f}" for s, c in sorted(above.items(), key=lambda kv: -kv[1])[:top])


def _target_r(measures: dict) -> list[str]:
    size, tiny = _size(measures, TARGET_USERS), measures.get("tiny")
    if size is None or tiny is None:
        return ["—", "not measured", "needs the 1M size and the tiny day"]
    r = r_value(size, tiny)
    why = f"CPU s above the fixed cost: {_above_fixed(size, tiny)}; floor {size['floor']['wall']:.2f} s"
    return [f"R = {r:.1f} (CPU: {r_value(size, tiny, 'cpu'):.1f})", "met" if r <= R_TARGET else "missed", why]


def _target_peak(measures: dict) -> list[str]:
    size = _size(measures, TARGET_USERS)
    if size is None:
        return ["—", "not measured", "needs the 1M size"]
    peak = size["run"]["peak_mib"]
    step, m = max(size["run"]["steps"].items(), key=lambda kv: kv[1].get("peak_mib", 0))
    why = f"DuckDB {_settings(size)}; the highest step: `{step}` {m['peak_mib']:,.0f} MiB"
    return [f"{peak:,.0f} MiB", "met" if peak <= PEAK_TARGET_MIB else "missed", why]


def _erasure_steps(size: dict) -> tuple[float, float, float, float]:
    """(erasure CPU, erasure wall, reading requests CPU, reading requests wall) of a measured day."""
    steps = size["run"]["steps"]
    work = [m for s, m in steps.items() if "erasure" in s and "request" not in s]
    reading = [m for s, m in steps.items() if "erasure_request" in s or "erased_users" in s]
    return tuple(sum(m.get(f, 0) for m in group) for group in (work, reading) for f in ("cpu", "wall"))


def _target_erasure(measures: dict) -> list[str]:
    quiet = [s for s in measures["sizes"] if s["landed"].get("erasure_requests", 0) == 0]
    if not quiet:
        return ["—", "not measured", "every measured day had erasure requests (use --history-days 2)"]
    size = max(quiet, key=lambda s: s["users"])
    cpu, wall, read_cpu, read_wall = _erasure_steps(size)
    measured = (
        f"{size['users']:,} users: `erasure_applied` {wall:.2f} s (CPU {cpu:.2f}); reading the requests "
        f"{read_wall:.2f} s (CPU {read_cpu:.2f})"
    )
    met = cpu <= read_cpu + ERASURE_SLACK_S
    why = f"erasure CPU {'within' if met else 'beyond'} reading's + {ERASURE_SLACK_S:.0f} s of step overhead"
    return [measured, "met" if met else "missed", why]


def _target_history(measures: dict) -> list[str]:
    history = measures.get("history")
    ratio = history_ratio(history) if history else None
    if ratio is None:
        return ["—", "not measured", "needs --history-compare 30,90"]
    points = sorted(history["points"], key=lambda p: p["history_days"])
    grown = _growth(points, top=3)
    why = "grew most (CPU s): " + ", ".join(f"{row[0]} {row[-1]}" for row in grown)
    measured = (
        f"{ratio['long']} against {ratio['short']} days: CPU x{ratio['cpu_per_row']:.2f} per landed row "
        f"(x{ratio['cpu']:.2f} raw), {history['users']:,} users"
    )
    status = "met" if ratio["cpu_per_row"] <= HISTORY_TARGET else "missed"
    return [
        measured,
        status if ratio["long"] >= HISTORY_DAYS else f"{status} at {ratio['long']} days, 90 not measured",
        why,
    ]


def _target_storage(measures: dict) -> list[str]:
    history = measures.get("history")
    if not history or not history.get("storage"):
        return ["—", "not measured", "needs --history-compare (its lake)"]
    growth = storage_growth(history["storage"], history["landed_by_day"], history["users"])
    cumulative = [e for e in growth if (e["grows"] or "").startswith("days x users")]
    measured = f"{len(cumulative)} of {len(growth)} tables grow with days x users"
    why = ", ".join(_why_grows(e) for e in cumulative) or "every daily table follows activity"
    return [measured, "missed" if cumulative else "met", why]


def _why_grows(entry: dict) -> str:
    if entry["growth"] > GROWTH_FACTOR:
        return f"`{entry['table']}` x{entry['growth']:.1f} faster than activity"
    return f"`{entry['table']}` {entry['per_user']:.2f} rows a day per user"


def _target_demo(measures: dict) -> list[str]:
    seconds = measures.get("demo_seconds")
    if seconds is None:
        return ["—", "not measured", "give `--demo-seconds` (the demo's `demo finished in`); see the README"]
    return [f"{seconds:.0f} s", "met" if seconds < DEMO_TARGET_S else "missed", "see the per-step fixed cost above"]


TARGETS = (
    ("a nightly day at 1M users: R ≤ 5", _target_r),
    ("a nightly day at 1M users: peak memory ≤ 3 GiB", _target_peak),
    ("a day without erasure requests: no erasure work beyond reading the requests", _target_erasure),
    ("a day on 90 days of history ≤ 1.2 x the same on 30", _target_history),
    ("lake storage grows with activity, not days x users", _target_storage),
    ("the demo (30 days, 20k users) < 60 s", _target_demo),
)


def targets(measures: dict) -> list[list[str]]:
    """[target, measured, met / missed / not measured, why] for each target of issue 11."""
    return [[name, *judge(measures)] for name, judge in TARGETS]


def markdown(measures: dict) -> str:
    """The whole report: conditions, summary, targets, then the per-size, history and storage tables."""
    tiny = measures.get("tiny")
    parts = [
        f"Conditions: {measures.get('conditions', '')}",
        "",
        "### Summary",
        "",
        summary_table(measures),
        "",
        "### Targets",
        "",
        _table(["target", "measured", "status", "why"], targets(measures), left=4),
    ]
    for size in ([tiny] if tiny else []) + measures["sizes"]:
        parts += ["", size_section(size, None if size is tiny else tiny)]
    if measures.get("history"):
        parts += ["", history_section(measures["history"]), "", storage_section(measures["history"])]
    return "\n".join(parts) + "\n"
