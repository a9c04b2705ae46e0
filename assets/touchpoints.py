"""Touchpoints: one activation export per touchpoint, after frequency caps and priorities.

Order of the rules (docs/contracts.md, `exports`):

1. Candidates: every treatment user of every campaign, on every touchpoint the campaign lists, less
   the unreachable (`Reach`, assets/suppression.py): a user suppressed on the touchpoint's channel (or
   on every channel), and on a marketing channel a user without marketing consent. An unreachable
   touchpoint is skipped: it takes no place in the campaign's order below and uses none of its cap.
   (Personalization consent gated the segments already: only consenting users are members.)
2. Frequency cap, per campaign and user: `max` exports in `per_days` days, counted across all the
   campaign's touchpoints. The exports already made on the previous `per_days - 1` days (from
   `previous_exports`, by `as_of`) are subtracted; what is left goes to the campaign's touchpoints in
   the order the map lists them (a campaign with touchpoints [A, B], max 1 and nothing sent yet keeps
   A only; with 1 already sent in the window it keeps none).
3. Priority: on each touchpoint, a user gets the candidate campaign with the highest priority, ties
   broken by the smaller campaign id.

Because caps come first, a higher-priority campaign that has used up its cap does not compete, and the
slot goes to the next campaign. The converse is a known trade-off: a campaign whose capped choice (say
A) is won by a higher-priority campaign does not fall back to its next touchpoint (B) that day; it is
simply not exported to that user today, and its cap is not consumed.

Freshness model (`freshness_report`): the export of day D holds the data up to the end of D (00:00
UTC of D+1, the cut-off). It lands `run_allowance_hours` after the cut-off (the nightly run's start
time after midnight plus its duration) and is replaced by the next export one schedule interval later,
so the data a touchpoint uses is at most `data_age_hours + schedule_interval_hours + run_allowance_hours`
old, where `data_age_hours` is how far the newest activity the export reflects lies before the cut-off.
A touchpoint is ok when that worst case is within its `freshness_hours`.

`measured_freshness` takes `data_age_hours` from the data: the newest activity (`last_seen_at`,
`last_txn_at`) of the user_daily partition that fed the day's segments, hence its audiences and
exports. A day whose export reflects no activity at all fails: nothing says how old its data is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl
import pyarrow as pa

from assets.pyramid_map import Campaign, Touchpoint
from assets.suppression import ALL_CHANNELS

EXPORT_SCHEMA = pa.schema(
    [
        ("as_of", pa.date32()),
        ("touchpoint_id", pa.string()),
        ("channel", pa.string()),
        ("user_id", pa.string()),
        ("campaign_id", pa.string()),
        ("priority", pa.int64()),
    ]
)
DEFAULT_RUN_ALLOWANCE_HOURS = 4.0  # the nightly run starts at 03:00 UTC and is given an hour to land


@dataclass(frozen=True)
class Reach:
    """Who may be reached: `suppressions` (user_id, channel; channel `*` is every channel), the marketing
    consent snapshot (user_id, consent_marketing) and the channels that need marketing consent."""

    suppressions: pa.Table
    marketing_consent: pa.Table
    marketing_channels: tuple[str, ...] = ()


def touchpoint_exports(
    audiences: pa.Table,
    campaigns: Sequence[Campaign],
    touchpoints: Sequence[Touchpoint],
    previous_exports: pa.Table | None,
    as_of: date,
    reach: Reach | None = None,
) -> dict[str, pa.Table]:
    """One export table per touchpoint of the map (empty where nobody is reached), sorted by user.
    `reach` None: nobody is suppressed and no channel needs marketing consent."""
    plan = _campaign_plan(campaigns, touchpoints)
    treated = (
        pl.from_arrow(audiences.select(["campaign_id", "user_id", "arm", "priority"]))
        .filter(pl.col("arm") == "treatment")
        .select("campaign_id", "user_id", pl.col("priority").cast(pl.Int64))
        .unique()
    )
    candidates = _reachable(treated.join(plan, on="campaign_id", how="inner"), reach)
    capped = candidates.join(
        _already_sent(previous_exports, plan, as_of), on=["campaign_id", "user_id"], how="left"
    ).filter(pl.col("touchpoint_order") < pl.col("cap_max") - pl.col("already_sent").fill_null(0))
    winners = (
        capped.sort(["user_id", "touchpoint_id", "priority", "campaign_id"], descending=[False, False, True, False])
        .unique(subset=["user_id", "touchpoint_id"], keep="first", maintain_order=True)
        .with_columns(as_of=pl.lit(as_of, pl.Date))
    )
    return {tp.id: _export_table(winners.filter(pl.col("touchpoint_id") == tp.id)) for tp in touchpoints}


def freshness_report(
    touchpoints: Sequence[Touchpoint],
    schedule_interval_hours: float = 24,
    run_allowance_hours: float = DEFAULT_RUN_ALLOWANCE_HOURS,
    data_age_hours: float = 0.0,
) -> list[dict]:
    """Per touchpoint: is its freshness need met by the data and the schedule? (model in the module docstring)."""
    worst_case = float(data_age_hours) + float(schedule_interval_hours) + float(run_allowance_hours)
    return [
        {
            "touchpoint_id": tp.id,
            "channel": tp.channel,
            "freshness_hours": float(tp.freshness_hours),
            "data_age_hours": float(data_age_hours),
            "schedule_interval_hours": float(schedule_interval_hours),
            "run_allowance_hours": float(run_allowance_hours),
            "worst_case_age_hours": worst_case,
            "ok": worst_case <= tp.freshness_hours,
            "message": _freshness_message(tp, worst_case, float(run_allowance_hours), float(data_age_hours)),
        }
        for tp in touchpoints
    ]


def measured_freshness(
    touchpoints: Sequence[Touchpoint],
    newest_activity: datetime | None,
    as_of: date,
    schedule_interval_hours: float = 24,
    run_allowance_hours: float = DEFAULT_RUN_ALLOWANCE_HOURS,
) -> list[dict]:
    """`freshness_report` with the data's age measured: the cut-off of `as_of` minus `newest_activity`
    (never negative: accepted activity is at most the allowed clock skew past the cut-off)."""
    if newest_activity is None:
        return [
            {
                "touchpoint_id": tp.id,
                "channel": tp.channel,
                "freshness_hours": float(tp.freshness_hours),
                "ok": False,
                "message": f"{tp.id} ({tp.channel}): the export of {as_of} reflects no activity at all, "
                "so its data is of unknown age; check that the day's events and transactions landed",
            }
            for tp in touchpoints
        ]
    cutoff = datetime.combine(as_of + timedelta(days=1), time(), tzinfo=UTC)
    age = max((cutoff - newest_activity).total_seconds() / 3600, 0.0)
    reports = freshness_report(touchpoints, schedule_interval_hours, run_allowance_hours, data_age_hours=round(age, 3))
    for report in reports:
        report["newest_activity"] = newest_activity.astimezone(UTC).isoformat()
    return reports


def _campaign_plan(campaigns: Sequence[Campaign], touchpoints: Sequence[Touchpoint]) -> pl.DataFrame:
    """One row per campaign and touchpoint it uses, with the touchpoint's position and the campaign's cap."""
    channels = {tp.id: tp.channel for tp in touchpoints}
    rows = [
        {
            "campaign_id": c.id,
            "touchpoint_id": tp_id,
            "channel": channels[tp_id],
            "touchpoint_order": order,
            "cap_max": c.frequency_cap.max,
            "cap_days": c.frequency_cap.per_days,
        }
        for c in campaigns
        if c.treated  # an A/A campaign is exported nowhere
        for order, tp_id in enumerate(t for t in dict.fromkeys(c.touchpoints) if t in channels)
    ]
    schema = {
        "campaign_id": pl.String,
        "touchpoint_id": pl.String,
        "channel": pl.String,
        "touchpoint_order": pl.Int64,
        "cap_max": pl.Int64,
        "cap_days": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema)


def _reachable(candidates: pl.DataFrame, reach: Reach | None) -> pl.DataFrame:
    """The candidates `reach` allows, each campaign's touchpoints renumbered per user without the others."""
    if reach is not None:
        suppressed = pl.from_arrow(reach.suppressions.select(["user_id", "channel"])).unique()
        everywhere = suppressed.filter(pl.col("channel") == ALL_CHANNELS).select("user_id")
        consented = (
            pl.from_arrow(reach.marketing_consent.select(["user_id", "consent_marketing"]))
            .filter(pl.col("consent_marketing").fill_null(False))
            .select("user_id")
            .unique()
        )
        needs_consent = pl.col("channel").is_in(list(reach.marketing_channels))
        candidates = (
            candidates.join(suppressed, on=["user_id", "channel"], how="anti")
            .join(everywhere, on="user_id", how="anti")
            .join(consented.with_columns(_consented=pl.lit(True)), on="user_id", how="left")
            .filter(~needs_consent | pl.col("_consented").fill_null(False))
            .drop("_consented")
        )
    return candidates.with_columns(
        touchpoint_order=(pl.col("touchpoint_order").rank("ordinal").over(["campaign_id", "user_id"]) - 1).cast(
            pl.Int64
        )
    )


def _already_sent(previous_exports: pa.Table | None, plan: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Exports per campaign and user on the days before `as_of` that the campaign's cap still counts."""
    schema = {"campaign_id": pl.String, "user_id": pl.String, "already_sent": pl.Int64}
    if previous_exports is None or previous_exports.num_rows == 0:
        return pl.DataFrame(schema=schema)
    caps = plan.select("campaign_id", "cap_days").unique()
    return (
        pl.from_arrow(previous_exports.select(["as_of", "campaign_id", "user_id"]))
        .join(caps, on="campaign_id", how="inner")
        .filter(
            pl.col("as_of") < as_of,  # a re-run of as_of must not count its own earlier output
            pl.col("as_of") > pl.lit(as_of) - pl.duration(days=pl.col("cap_days")),
        )
        .group_by("campaign_id", "user_id")
        .agg(already_sent=pl.len().cast(pl.Int64))
    )


def _export_table(winners: pl.DataFrame) -> pa.Table:
    return winners.sort("user_id").select(EXPORT_SCHEMA.names).to_arrow().cast(EXPORT_SCHEMA)


def _freshness_message(tp: Touchpoint, worst_case: float, run_allowance: float, data_age: float = 0.0) -> str:
    need = f"{tp.id} ({tp.channel}) needs data at most {tp.freshness_hours:g} h old"
    aged = f" (its newest activity is {data_age:g} h before the cut-off)" if data_age else ""
    if worst_case <= tp.freshness_hours:
        return f"{need}; the export delivers at worst {worst_case:g} h{aged}: ok"
    longest_interval = tp.freshness_hours - run_allowance - data_age
    remedy = (
        f"run at least every {longest_interval:g} h"
        if longest_interval > 0
        else f"land exports within {tp.freshness_hours:g} h of the newest data"
    )
    return f"{need} but the export delivers at worst {worst_case:g} h{aged}: {remedy}, or relax freshness_hours"
