"""Benchmark of CUPED on the goals' to-date rows: how much narrower the intervals get, and whether they still
cover a planted effect.

For each seed, `--campaigns` campaigns of `--users` users (20% held out) go through `assets.goal_cohort.goal_to_date`
with a `goal_cohort` table, exactly as the pipeline reads them: a user's daily success rate r_i is drawn from
Beta(2, 18), their pre-entry covariate is Binomial(14, r_i) success days over the K = 14 days before entry,
they are measured on 5..30 days and treatment multiplies r_i by (1 + lift). Printed per lift: the median ratio
of interval widths on the log scale (CUPED / unadjusted; the same for the always-valid and the fixed-horizon
interval, which share the standard error) and the share of campaigns whose interval covers the planted lift:
always-valid CUPED, always-valid unadjusted, fixed-horizon CUPED (nominal 95%).

    PYTHONPATH=. python benchmarks/bench_cuped.py [--seeds 5] [--campaigns 100] [--users 2000]
"""

from __future__ import annotations

import argparse
import math
import sys
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assets.goal_cohort import CUPED_PRE_DAYS, GOAL_COHORT_SCHEMA, GOAL_USER_OUTCOMES_SCHEMA, goal_to_date  # noqa: E402
from assets.pyramid_map import Campaign, FrequencyCap, Goal  # noqa: E402

DS = date(2026, 10, 30)


def simulate(seed: int, campaigns: int, users: int, lift: float) -> list[dict]:
    """The to-date goal rows of `campaigns` simulated campaigns with the planted `lift`."""
    rng = np.random.default_rng(seed)
    size = campaigns * users
    rate = rng.beta(2, 18, size)
    holdout = rng.random(size) < 0.2
    days = rng.integers(5, 31, size)
    successes = rng.binomial(days, np.clip(rate * np.where(holdout, 1.0, 1.0 + lift), 0, 1))
    frame = pl.DataFrame(
        {
            "ds": [DS] * size,
            "goal_id": np.repeat([f"g{k:03d}" for k in range(campaigns)], users),
            "metric": "deposit_rate",
            "campaign_id": np.repeat([f"c{k:03d}" for k in range(campaigns)], users),
            "arm": np.where(holdout, "holdout", "treatment"),
            "user_id": [f"u{n}" for n in range(size)],
            "first_ds": [DS] * size,
            "last_ds": [DS] * size,
            "days": days.astype(np.int64),
            "successes": successes.astype(np.int64),
            "entry_ds": [DS] * size,
            "pre_days": np.full(size, CUPED_PRE_DAYS, np.int64),
            "pre_successes": rng.binomial(CUPED_PRE_DAYS, rate).astype(np.int64),
            "exposed_ds": pl.Series([None] * size, dtype=pl.Date),
        }
    )
    outcomes = frame.select(GOAL_USER_OUTCOMES_SCHEMA.names).to_arrow().cast(GOAL_USER_OUTCOMES_SCHEMA)
    cohort = frame.select(GOAL_COHORT_SCHEMA.names).to_arrow().cast(GOAL_COHORT_SCHEMA)
    goals = [Goal(f"g{k:03d}", "engagement", "deposit_rate", f"c{k:03d}", 0.0, ()) for k in range(campaigns)]
    plans = [Campaign(f"c{k:03d}", "", ("s",), ("t",), 10, 0.2, FrequencyCap(1, 1)) for k in range(campaigns)]
    return goal_to_date(outcomes, DS, goals, plans, cohort).to_pylist()


def width(low: float, high: float) -> float:
    return math.log1p(high) - math.log1p(low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--users", type=int, default=2000)
    args = parser.parse_args()
    print(f"{args.seeds} seeds x {args.campaigns} campaigns x {args.users} users, K = {CUPED_PRE_DAYS} pre-entry days")
    print(f"{'lift':>6} {'width ratio':>12} {'theta':>6} {'cover CUPED':>12} {'cover unadj.':>13} {'cover fixed':>12}")
    for lift in (0.0, 0.05, 0.10, 0.20):
        rows = [r for seed in range(args.seeds) for r in simulate(seed, args.campaigns, args.users, lift)]
        ratios = [
            width(r["ci_low"], r["ci_high"]) / width(r["ci_low_unadjusted"], r["ci_high_unadjusted"]) for r in rows
        ]
        covered = np.mean([r["ci_low"] <= lift <= r["ci_high"] for r in rows])
        covered_u = np.mean([r["ci_low_unadjusted"] <= lift <= r["ci_high_unadjusted"] for r in rows])
        fixed_covered = np.mean([r["ci_low_fixed"] <= lift <= r["ci_high_fixed"] for r in rows])
        theta = np.median([r["cuped_theta"] for r in rows])
        print(
            f"{lift:>6.2f} {np.median(ratios):>12.3f} {theta:>6.2f} {covered:>12.3f} {covered_u:>13.3f} "
            f"{fixed_covered:>12.3f}"
        )


if __name__ == "__main__":
    main()
