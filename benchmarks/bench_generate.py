"""Benchmark of the sample data generator (the pipelines.sample package) on one core.

Generating draws every row, effect and defect as numpy arrays; writing renders them as text (ids, ISO
timestamps, JSON) and writes the files. Polars is pinned to one thread before it is imported, and a
tiny warm-up run pays the one-off imports first. Prints one table row per scale.

    /tmp/venv-probe/bin/python benchmarks/bench_generate.py [--users 50000] [--days 30] [--seed 7]
"""

from __future__ import annotations

import os

os.environ.setdefault("POLARS_MAX_THREADS", "1")  # before polars is imported anywhere

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.sample.generate import generate_sample  # noqa: E402

COLUMNS = ("users", "days", "events", "s generating", "events/s generating", "s writing", "of which rendering")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        generate_sample(Path(tmp) / "warmup", users=200, days=2, seed=args.seed)
        summary = generate_sample(Path(tmp) / "landing", users=args.users, days=args.days, seed=args.seed)
    row = (
        f"{summary.users:,}",
        str(summary.days),
        f"{summary.events:,}",
        f"{summary.generate_seconds:.2f}",
        f"{summary.events / summary.generate_seconds:,.0f}",
        f"{summary.write_seconds:.2f}",
        f"{summary.render_seconds:.2f}",
    )
    widths = [max(len(c), len(v)) for c, v in zip(COLUMNS, row)]
    print(f"polars threads: {os.environ['POLARS_MAX_THREADS']}")
    print(" | ".join(c.rjust(w) for c, w in zip(COLUMNS, widths)))
    print("-+-".join("-" * w for w in widths))
    print(" | ".join(v.rjust(w) for v, w in zip(row, widths)))


if __name__ == "__main__":
    main()
