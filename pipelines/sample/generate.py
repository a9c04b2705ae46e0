"""`generate_sample`: draw a whole sample as arrays, then write it as landing files and answer keys."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from assets.pyramid_map import PyramidMap, load_map
from pipelines.sample.answer_keys import defect_plan, planted_truth
from pipelines.sample.behaviour import content_rates, generate_events
from pipelines.sample.defects import (
    EVENT_DEFECT_RATES,
    TRANSACTION_DEFECT_RATES,
    plant_profile_defects,
    plant_row_defects,
)
from pipelines.sample.effects import (
    campaign_effects,
    content_campaigns,
    goals_by_campaign,
    plant_effects,
    treatment_arms,
)
from pipelines.sample.population import Population, draw_population
from pipelines.sample.profiles import erasure_rows, generate_profiles
from pipelines.sample.rendering import (
    ErasureRenderer,
    EventRenderer,
    ProfileRenderer,
    TransactionRenderer,
    Writer,
    clear_previous_sample,
    write_json,
)
from pipelines.sample.rows import append_clean_rows
from pipelines.sample.spec import SOURCES, Spec
from pipelines.sample.time_to_value import plant_time_to_event, time_to_event_goals
from pipelines.sample.transactions import generate_transactions


@dataclass
class GenerationSummary:
    """What one generation wrote, and how long drawing and writing took."""

    landing: Path
    seed: int
    users: int
    days: int
    start: date
    rows: dict[str, int]  # per source, over all landing days
    rows_by_day: dict[str, dict[str, int]]  # per source and landing day (ISO date)
    generate_seconds: float  # drawing every row as arrays
    write_seconds: float  # rendering text and writing files (render_seconds included)
    render_seconds: float
    files: list[Path] = field(default_factory=list)
    truth_path: Path | None = None
    defect_plan_path: Path | None = None

    @property
    def events(self) -> int:
        return self.rows["events"]


def generate_sample(
    landing: Path,
    *,
    users: int = 20_000,
    days: int = 30,
    start: date | None = None,
    seed: int = 7,
    pyramid_map: PyramidMap | None = None,
    progress: Callable[[str], None] | None = None,
    effects: Mapping[str, float] | None = None,
) -> GenerationSummary:
    """Replace the sample in `landing/` (the data/landing folder) with a fresh one; say what was written.

    `effects` overrides PLANTED_EFFECTS by campaign id; a campaign of the map without one gets 0.
    """
    if not 1 <= users <= 9_999_999 or days < 1:
        raise ValueError(f"need 1 <= users <= 9,999,999 (seven-digit ids) and days >= 1, got {users}, {days}")
    say = progress or (lambda _message: None)
    pyramid_map = pyramid_map or load_map()
    effects_by_campaign = campaign_effects(pyramid_map, effects)
    spec = Spec(pyramid_map, seed, users, days, start or pyramid_map.start_date, effects_by_campaign)
    landing = Path(landing)

    clock = time.perf_counter()
    sample = _generate(spec, say)
    generate_seconds = time.perf_counter() - clock
    clock = time.perf_counter()
    writer = _write(spec, landing, sample, say)
    write_seconds = time.perf_counter() - clock
    summary = GenerationSummary(
        landing=landing,
        seed=seed,
        users=users,
        days=days,
        start=spec.start,
        rows={source: sum(writer.rows_by_day[source].values()) for source in SOURCES},
        rows_by_day=writer.rows_by_day,
        generate_seconds=generate_seconds,
        write_seconds=write_seconds,
        render_seconds=writer.render_seconds,
        files=writer.files,
        truth_path=landing / "_truth" / "planted_truth.json",
        defect_plan_path=landing / "_truth" / "defect_plan.json",
    )
    say(
        f"done: {summary.rows['events']:,} events, {summary.rows['transactions']:,} transactions; "
        f"{generate_seconds:.2f}s generating, {write_seconds:.2f}s writing"
    )
    return summary


@dataclass
class _Sample:
    """Everything drawn, as arrays; rows of each source ordered by landing day."""

    pop: Population
    arms: dict[str, np.ndarray]
    events: dict[str, np.ndarray]
    sessions: int
    transactions: dict[str, np.ndarray]
    profiles: dict[str, np.ndarray]
    defect_plan: dict
    time_to_event: dict[str, dict]  # per campaign with a time-to-event goal: the true RMST of each arm


def _generate(spec: Spec, say: Callable[[str], None]) -> _Sample:
    """Draw the population, the arms and effects, every source's rows, then plant the defects."""
    say(f"generating {spec.users:,} users over {spec.days} days from {spec.start} (seed {spec.seed})")
    pop = draw_population(spec)
    arms = treatment_arms(spec, pop)
    pop.rates.update(content_rates(spec, pop.n))
    plant_effects(spec, pop, arms)
    events, sessions, apart_events, content = generate_events(spec, pop, arms, content_campaigns(spec.map), say)
    txns = generate_transactions(spec, pop)
    timed_goals = time_to_event_goals(goals_by_campaign(spec.map), spec.map.metrics)
    timed = plant_time_to_event(spec, pop, arms, txns, timed_goals)
    profiles = generate_profiles(spec, pop)
    say(f"planting defects in {len(events['t']):,} events and {len(txns['t']):,} transactions")
    plan = {
        "events": plant_row_defects(spec, pop, events, EVENT_DEFECT_RATES, "events"),
        "transactions": plant_row_defects(spec, pop, txns, TRANSACTION_DEFECT_RATES, "transactions"),
        "profiles": plant_profile_defects(spec, profiles, first_profiles=pop.n),
    }
    # after the defects: the rows drawn before keep their ids, defects and places
    append_clean_rows(events, apart_events)
    append_clean_rows(events, content)
    append_clean_rows(txns, timed.added)
    return _Sample(pop, arms, events, sessions, txns, profiles, plan, timed.truth)


def _write(spec: Spec, landing: Path, sample: _Sample, say: Callable[[str], None]) -> Writer:
    """Clear the previous sample, write every source day by day, then the two answer keys."""
    say(f"writing landing files into {landing}")
    clear_previous_sample(landing)
    pop = sample.pop
    writer = Writer(spec, landing)
    writer.write("events", sample.events, EventRenderer(spec, pop, sample.sessions))
    writer.write("transactions", sample.transactions, TransactionRenderer(pop))
    writer.write("profiles", sample.profiles, ProfileRenderer(spec, pop))
    writer.write("erasure_requests", erasure_rows(spec, pop), ErasureRenderer(pop))
    write_json(landing / "_truth" / "planted_truth.json", planted_truth(spec, pop, sample.arms, sample.time_to_event))
    write_json(landing / "_truth" / "defect_plan.json", defect_plan(spec, sample.defect_plan))
    return writer
