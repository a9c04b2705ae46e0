"""`pyramid example cdnow`: a real retailer's transaction log, from the raw text file to the summary.

The data is the CDNOW log of Fader & Hardie (23,570 customers, 69,659 purchase lines, 1997-01-01 ..
1998-06-30), as the PyPI package `lifetimes` carries it (`lifetimes/datasets/CDNOW_master.txt`). It is
found through the package's import spec, without importing `lifetimes` (whose import may fail on a newer
pandas). The example:

1. writes a program folder: `pyramid.yaml` (this package's map, pipelines/examples/cdnow/pyramid.yaml)
   and `data/`;
2. converts the text file to CSV, `export/cdnow_transactions.csv` (`to_csv`). The conversion keeps every
   value as written: the file's whitespace-aligned fields are split on whitespace (each data line has
   exactly four, which is checked), `customer_id` keeps its leading zeros, `number_of_cds` and
   `dollar_value` keep their text; only the date `YYYYMMDD` is written `YYYY-MM-DD` (ISO 8601, which the
   raw layer reads). A first column `line`, the record's line number in CDNOW_master.txt (the header is
   line 1), is the purchase's key: two identical lines of one customer and day are two purchases;
3. lands it with `pyramid import` (pipelines/history_import.py) into daily landing partitions;
4. (pipelines/commands.py) runs the pyramid over the first `days` days and prints the summary.
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from rich.console import Console

from assets.lake import Lake, atomic_path
from assets.pyramid_map import PyramidMap, load_map
from pipelines.history_import import ImportResult, import_history

MAP_PATH = Path(__file__).with_name("pyramid.yaml")
DATASET = "CDNOW_master.txt"
FIELDS = ("customer_id", "date", "number_of_cds", "dollar_value")
EXPORT = Path("export") / "cdnow_transactions.csv"
MARKER = ".pyramid-example-cdnow"  # a folder this example wrote, so that a re-run may replace its data
DEFAULT_DAYS = 7


class ExampleError(RuntimeError):
    """The example cannot start; the message says why, `todo` what to do."""

    def __init__(self, message: str, todo: str):
        super().__init__(message)
        self.todo = todo


@dataclass(frozen=True)
class Program:
    """The written program folder: its map, its data root, the CSV export and what the import landed."""

    map_path: Path
    data_root: Path
    export: Path
    pyramid_map: PyramidMap
    imported: ImportResult


def dataset_path() -> Path:
    """CDNOW_master.txt inside the installed `lifetimes` package (not imported)."""
    spec = importlib.util.find_spec("lifetimes")
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "datasets" / DATASET
        if path.is_file():
            return path
    raise ExampleError(
        f"the CDNOW dataset ({DATASET}) was not found: it comes with the PyPI package lifetimes",
        "pip install lifetimes==0.11.3   (or the project's `examples` extra)",
    )


def read_dataset(path: Path) -> pa.Table:
    """The text file's records as text columns, each field as written, with `line` (header = line 1)."""
    lines = path.read_text(encoding="ascii").splitlines()
    header = lines[0].split() if lines else []
    if tuple(header) != FIELDS:
        raise ExampleError(f"{path}: header {header}, expected {list(FIELDS)}", "reinstall lifetimes==0.11.3")
    numbered = [(number, line.split()) for number, line in enumerate(lines[1:], start=2) if line.strip()]
    odd = next((number for number, fields in numbered if len(fields) != len(FIELDS)), None)
    if odd is not None:
        raise ExampleError(f"{path}:{odd}: expected {len(FIELDS)} fields", "reinstall lifetimes==0.11.3")
    columns = {name: pa.array([fields[i] for _, fields in numbered], pa.string()) for i, name in enumerate(FIELDS)}
    return pa.table({"line": pa.array([number for number, _ in numbered], pa.int64()), **columns})


def to_csv(path: Path, target: Path) -> int:
    """Write the dataset as CSV (module docstring: values as written, the date as YYYY-MM-DD); its rows."""
    table = read_dataset(path)
    raw_date = table.column("date")
    iso = pc.binary_join_element_wise(
        *(pc.utf8_slice_codeunits(raw_date, start, stop) for start, stop in ((0, 4), (4, 6), (6, 8))), "-"
    )
    table = table.set_column(table.schema.get_field_index("date"), "date", iso)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as staged:
        staged.write_text(",".join(table.column_names) + "\n", encoding="ascii")
        with staged.open("ab") as out:
            pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return table.num_rows


def write_program(directory: Path) -> tuple[Path, Path]:
    """The folder's map and data root; a folder an earlier run of the example wrote has its data replaced."""
    directory.mkdir(parents=True, exist_ok=True)
    marker, data_root = directory / MARKER, directory / "data"
    if any(directory.iterdir()) and not marker.exists():
        raise ExampleError(f"{directory} is not empty and was not written by this example", "name a new folder")
    shutil.rmtree(data_root, ignore_errors=True)
    marker.write_text("written by `pyramid example cdnow`; its data is replaced by the next run\n")
    map_path = directory / "pyramid.yaml"
    shutil.copyfile(MAP_PATH, map_path)
    return map_path, data_root


def prepare(directory: Path) -> Program:
    """Write the program folder, convert the dataset to CSV and import it into the landing folders."""
    dataset = dataset_path()
    map_path, data_root = write_program(directory)
    pyramid_map = load_map(map_path)
    export = directory / EXPORT
    to_csv(dataset, export)
    source = pyramid_map.sources["transactions"]
    imported = import_history(Lake(data_root), source, [export], first_day=pyramid_map.start_date)
    return Program(map_path, data_root, export, pyramid_map, imported)


def days_to_run(program: Program, days: int) -> list[date]:
    """The first `days` days of the map's schedule."""
    return [program.pyramid_map.start_date + timedelta(days=n) for n in range(days)]


def print_prepared(console: Console, program: Program) -> None:
    """What was written and landed, and how to go on from there."""
    landed = sorted(program.imported.rows_per_day)
    rows = sum(program.imported.rows_per_day.values())
    console.print(f"wrote {program.map_path} and {program.export} (CDNOW_master.txt as CSV, values as written)")
    span = f"{landed[0]} .. {landed[-1]}"
    console.print(f"[green]imported[/green] {rows:,} purchases into {len(landed)} landing days ({span})")


def print_next(console: Console, program: Program, directory: Path, last: date) -> None:
    """The commands that go on: more days, the scorecard, the status."""
    landed = max(program.imported.rows_per_day)
    console.print("\n[bold]Next[/bold] (in the program folder)")
    console.print(f"  cd {directory}")
    console.print(f"  pyramid run --start {last + timedelta(days=1)} --end {landed}   # the rest of the history")
    console.print("  pyramid report --open   # the scorecard;  pyramid status   # per day and layer")
