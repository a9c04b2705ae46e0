"""The privacy decisions the program takes for its users, recorded where an auditor looks: a map without
profiles assumes each user's consent from `actionable.consent_default` (assets/first_seen.py). Each day's
decision is a JSON record under the reports (`reports/privacy_decisions/<day>.json`): the value, its
basis and how many users it applied to; counts only, never ids. `pyramid status` and the run summary
show the latest one with the sources the program does without."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from assets.lake import Lake, write_text_atomic
from assets.pyramid_map import NOT_DECLARED, SOURCE_NAMES, PyramidMap

DECISIONS_FOLDER = "privacy_decisions"


def record_decision(lake: Lake, ds: date, decision: dict[str, str | int]) -> Path:
    """Record the day's privacy decision under the reports, atomically (a re-run writes the same bytes)."""
    path = lake.reports / DECISIONS_FOLDER / f"{ds.isoformat()}.json"
    return write_text_atomic(json.dumps({"day": ds.isoformat(), **decision}, indent=1, sort_keys=True) + "\n", path)


def latest_decision(lake: Lake, through: date | None = None) -> dict | None:
    """The latest recorded privacy decision (on or before `through`); None when there is none."""
    days = sorted(p for p in (lake.reports / DECISIONS_FOLDER).glob("*.json") if not p.name.startswith("."))
    if through is not None:
        days = [p for p in days if p.stem <= through.isoformat()]
    return json.loads(days[-1].read_text()) if days else None


def decision_lines(lake: Lake, pyramid_map: PyramidMap, through: date | None = None) -> list[str]:
    """What `pyramid status` and the run summary say about the sources the program does without and its
    privacy decisions; empty for a map that declares every source."""
    undeclared = [name for name in SOURCE_NAMES if name not in pyramid_map.sources]
    lines = [f"{NOT_DECLARED}: {', '.join(undeclared)}"] if undeclared else []
    consent = pyramid_map.actionable.consent_default
    if consent is None:
        return lines
    lines.append(
        f"privacy decision: consent from the map's default (personalization {consent.personalization}, "
        f"marketing {consent.marketing}); basis: {consent.basis}"
    )
    record = latest_decision(lake, through)
    if record is not None:
        lines.append(
            f"  applied to {record['consent_default/users']:,} users on {record['day']} "
            f"({record['consent_default/new_users']:,} first seen that day)"
        )
    return lines
