"""Benchmark of the data-quality layer (assets/quality/, Great Expectations 1.x) on synthetic events.

For each size, synthesizes a raw events batch (every column VARCHAR, as the raw layer lands it) with
planted defects at known rows (one per defective row), writes it to Parquet, and times:

- DuckDB reading the batch back from the Parquet file into Arrow (the yardstick);
- `typed_frame` (DuckDB typing, Arrow -> pandas) for the suite's columns;
- `validation.validate_batch` with the events suite, as shipped (by column) and in one GX run;
- what GX would cost without this module's choices: one run with GX's default result_format SUMMARY
  (it still computes every unexpected index, and a `df.filter(items=[...])` query string), the documented
  `batch_definition.get_batch(...).validate(...)` path with GX's dataframe fingerprint on, and GX's
  own `expect_column_values_to_be_json_parseable` on `properties` (which the suite replaces);

checks that the failing rows GX reports are exactly the planted ones, and measures the peak memory
added by a validation. `import great_expectations` is timed in a fresh interpreter.

    /tmp/venv-probe/bin/python benchmarks/bench_quality.py [--rows 100000 1000000] [--repeat 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assets import actionable  # noqa: E402
from assets.quality import validation  # noqa: E402
from assets.quality.suites import load_suite, suite_from_dict, suite_path  # noqa: E402
from assets.quality.typed_batch import day_parameters, typed_frame  # noqa: E402

DS = date(2026, 10, 1)
EVENT_TYPES = list(actionable.EVENT_TYPES)
# planted defects: share of rows, one defect per row; the reason the suite must give them
DEFECTS = {
    "missing_user_id": 0.001,  # null or blank user_id
    "missing_key": 0.001,  # null event_id
    "bad_timestamp": 0.001,  # not a date, no offset, or an impossible date
    "future_timestamp": 0.001,  # days after the landing day
    "unknown_event_type": 0.001,  # "tap" or null
}
NULL_CHANNEL, INVALID_JSON, MIXED_OFFSET = 0.01, 0.0005, 0.01


def synthesize(rows: int, seed: int = 7) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """A raw events batch and, per reason, the rows planted with it."""
    rng = np.random.default_rng(seed)
    draw = rng.random(rows)
    planted, low = {}, 0.0
    for reason, share in DEFECTS.items():
        planted[reason] = np.flatnonzero((draw >= low) & (draw < low + share))
        low += share
    clean = draw >= low

    def flag(reason: str) -> np.ndarray:
        mask = np.zeros(rows, dtype=bool)
        mask[planted[reason]] = True
        return mask

    def ids(prefix: str, values: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(prefix, pa.array(values).cast(pa.string()), "")

    start = np.datetime64("2026-10-01T00:00:00", "s").astype(np.int64)
    seconds = pa.array(start + rng.integers(0, 86_400, rows), pa.timestamp("s", tz="UTC"))
    utc_text = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
    shifted = pc.strftime(pc.add(seconds, pa.scalar(7200, pa.duration("s"))), format="%Y-%m-%dT%H:%M:%S+02:00")
    occurred = pc.if_else(pa.array(clean & (rng.random(rows) < MIXED_OFFSET)), shifted, utc_text).to_numpy(
        zero_copy_only=False
    )
    bad_texts = np.array(["not-a-date", "2026-10-01T10:00:00", "2026-13-45T99:00Z"], dtype=object)
    occurred[flag("bad_timestamp")] = bad_texts[np.arange(flag("bad_timestamp").sum()) % 3]
    occurred[flag("future_timestamp")] = "2026-10-20T10:00:00Z"

    user = ids("u", rng.integers(0, 50_000, rows)).to_numpy(zero_copy_only=False)
    user[planted["missing_user_id"][::2]] = None
    user[planted["missing_user_id"][1::2]] = "  "
    event_id = ids("e", np.arange(rows)).to_numpy(zero_copy_only=False)
    event_id[planted["missing_key"]] = None
    event_type = np.array(EVENT_TYPES, dtype=object)[rng.integers(0, len(EVENT_TYPES), rows)]
    event_type[planted["unknown_event_type"][::2]] = "tap"
    event_type[planted["unknown_event_type"][1::2]] = None
    channel = np.array(["app", "web", "email", "push"], dtype=object)[rng.integers(0, 4, rows)]
    channel[rng.random(rows) < NULL_CHANNEL] = None
    properties = np.array(['{"feature":"budget_tool"}', '{"feature":"savings_goal"}', "{}"], dtype=object)[
        rng.integers(0, 3, rows)
    ]
    properties[rng.random(rows) < INVALID_JSON] = '{"feature": '
    table = pa.table(
        {
            "event_id": pa.array(event_id, pa.string()),
            "user_id": pa.array(user, pa.string()),
            "event_type": pa.array(event_type, pa.string()),
            "occurred_at": pa.array(occurred, pa.string()),
            "session_id": ids("s", rng.integers(0, 150_000, rows)),
            "channel": pa.array(channel, pa.string()),
            "campaign_id": pa.nulls(rows, pa.string()),
            "touchpoint_id": pa.nulls(rows, pa.string()),
            "properties": pa.array(properties, pa.string()),
        }
    )
    return table, planted


def timed(fn, repeat: int) -> tuple[float, object]:
    """The median wall seconds of `repeat` runs, and the last value."""
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def peak_extra_mb(fn) -> tuple[float, object]:
    """Peak resident memory added while `fn` runs (Linux: VmHWM reset through clear_refs)."""

    def status(key: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
        return float("nan")

    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return float("nan"), fn()
    before = status("VmRSS")
    value = fn()
    return status("VmHWM") - before, value


def import_seconds(repeat: int) -> float:
    code = "import time; t = time.perf_counter(); import great_expectations; print(time.perf_counter() - t)"
    runs = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        for _ in range(repeat)
    ]
    return statistics.median(runs)


def bench_size(rows: int, repeat: int, quick: bool, folder: Path) -> tuple[dict[str, str], list[str]]:
    import great_expectations as gx
    from great_expectations.execution_engine import pandas_execution_engine
    from great_expectations.validator.v1_validator import Validator as V1Validator

    notes: list[str] = []
    cells: dict[str, str] = {}
    raw, planted = synthesize(rows)
    path = folder / f"events-{rows}.parquet"
    pq.write_table(raw, path)
    cells["raw batch"] = f"{raw.nbytes / 1e6:,.0f} MB Arrow, {path.stat().st_size / 1e6:,.0f} MB Parquet"

    con = duckdb.connect()
    seconds, _ = timed(lambda: con.sql("SELECT * FROM read_parquet(?)", params=[str(path)]).to_arrow_table(), repeat)
    cells["DuckDB: read the Parquet batch to Arrow"] = f"{seconds:.3f} s"

    suite = load_suite(suite_path("events"))
    params = day_parameters(DS)
    seconds, frame = timed(lambda: typed_frame(raw, "events", suite.columns), repeat)
    cells["typed_frame (DuckDB typing -> pandas)"] = f"{seconds:.3f} s"
    cells["typed frame in pandas"] = (
        f"{frame.memory_usage(deep=True).sum() / 1e6:,.0f} MB, {len(frame.columns)} columns"
    )

    validation.validate_batch(frame.head(1000), suite, "warm-up", parameters=params)  # context, metric registry
    mb, outcome = peak_extra_mb(lambda: validation.validate_batch(frame, suite, "events", parameters=params))
    seconds, outcome = timed(lambda: validation.validate_batch(frame, suite, "events", parameters=params), repeat)
    cells["validate_batch (as shipped: by column, COMPLETE for row rules)"] = f"{seconds:.3f} s"
    cells["  of which inside GX"] = f"{outcome.timings['gx_validate_s']:.3f} s"
    cells["  peak memory added by it"] = f"{mb:,.0f} MB"
    exact = {reason: np.array_equal(outcome.row_reasons[reason], planted[reason]) for reason in DEFECTS}
    failing = sum(len(v) for v in planted.values())
    cells["  failing rows = planted rows, every reason"] = (
        f"{'yes' if all(exact.values()) else 'NO ' + str(exact)} ({failing:,} rows)"
    )
    cells["  failing_rows() table"] = f"{timed(outcome.failing_rows, repeat)[0]:.3f} s"
    status = {c.check_name: f"{c.status} ({c.observed_value})" for c in outcome.column_status}
    notes.append(f"{rows:,} rows, column verdicts: {status}")

    seconds, whole = timed(
        lambda: validation.validate_batch(frame, suite, "events", parameters=params, by_column=False), repeat
    )
    cells["validate_batch(by_column=False): one GX run"] = f"{seconds:.3f} s"
    assert all(np.array_equal(whole.row_reasons[r], outcome.row_reasons[r]) for r in DEFECTS)

    definition = validation._batch_definition("events")
    summary = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
    seconds, _ = timed(
        lambda: V1Validator(
            batch_definition=definition, batch_parameters={"dataframe": frame}, result_format=summary
        ).validate_expectation_suite(suite.gx_suite, params),
        repeat,
    )
    cells["GX, one run, result_format SUMMARY (GX's default)"] = f"{seconds:.3f} s"

    complete = validation._result_format(5, complete=True)
    pandas_execution_engine.HASH_THRESHOLD = 1e9  # GX's default: fingerprint batches under 1 GB
    try:
        seconds, _ = timed(
            lambda: definition.get_batch(batch_parameters={"dataframe": frame}).validate(
                suite.gx_suite, result_format=complete, expectation_parameters=params
            ),
            1,
        )
    finally:
        pandas_execution_engine.HASH_THRESHOLD = 0
    cells["GX documented path: get_batch().validate(), fingerprint on"] = f"{seconds:.3f} s"

    if quick:
        cells["GX expect_column_values_to_be_json_parseable(properties)"] = "(skipped: --quick)"
    else:
        json_suite = gx.ExpectationSuite(
            name="json",
            expectations=[gx.expectations.ExpectColumnValuesToBeJsonParseable(column="properties", mostly=0.99)],
        )
        properties = typed_frame(raw, "events", ["properties"])
        seconds, _ = timed(
            lambda: V1Validator(
                batch_definition=definition, batch_parameters={"dataframe": properties}, result_format=summary
            ).validate_expectation_suite(json_suite),
            1,
        )
        is_json = typed_frame(raw, "events", ["properties_is_json"])
        ours, _ = timed(
            lambda: V1Validator(
                batch_definition=definition, batch_parameters={"dataframe": is_json}, result_format=summary
            ).validate_expectation_suite(
                suite_from_dict(
                    {
                        "name": "j",
                        "expectations": [
                            r
                            for r in suite.to_json_dict()["expectations"]
                            if r["kwargs"]["column"] == "properties_is_json"
                        ],
                    }
                ).gx_suite,
                params,
            ),
            1,
        )
        cells["GX expect_column_values_to_be_json_parseable(properties)"] = f"{seconds:.3f} s"
        cells["  the suite's instead: properties_is_json in_set [true]"] = f"{ours:.3f} s"
    return cells, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (the median is shown)")
    parser.add_argument("--quick", action="store_true", help="skip GX's json_parseable (about 10 s per million rows)")
    args = parser.parse_args()

    cold_import = import_seconds(3)
    started = time.perf_counter()
    import great_expectations  # noqa: F401  (the in-process import, after numpy/pyarrow/duckdb)

    in_process = time.perf_counter() - started

    columns, notes = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            print(f"benchmarking {rows:,} rows ...", flush=True)
            columns[rows], size_notes = bench_size(rows, args.repeat, args.quick, Path(tmp))
            notes += size_notes

    labels = list(dict.fromkeys(label for cells in columns.values() for label in cells))
    width = max(len(label) for label in labels) + 2
    print()
    print(
        f"import great_expectations: {cold_import:.2f} s in a fresh interpreter (median of 3); "
        f"{in_process:.2f} s in this process after numpy/pyarrow/duckdb"
    )
    print()
    header = "".join(f"{f'{rows:,} rows':>30}" for rows in columns)
    print(f"{'step (median of ' + str(args.repeat) + ' runs)':<{width}}{header}")
    for label in labels:
        print(f"{label:<{width}}" + "".join(f"{columns[rows].get(label, ''):>30}" for rows in columns))
    print()
    for note in notes:
        print(note)
    print(
        f"({os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; GX {great_expectations.__version__}, "
        f"pandas {__import__('pandas').__version__}, duckdb {duckdb.__version__})"
    )


if __name__ == "__main__":
    main()
