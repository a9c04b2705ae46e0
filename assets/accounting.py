"""Accounting by a separate read: the records of a day's landing files, counted without the landing or
the cleaning code, against the rows the cleaning wrote (DESIGN rule 1: nothing is lost silently).

The count is deliberately simple, so that a bug in `assets/raw.py` or `assets/actionable.py` cannot
hide itself:

- a JSON-lines file holds one record per line that is not blank (blank: only spaces, tabs, CR; a
  UTF-8 byte-order mark is not a character), whether or not the line parses;
- a CSV file holds one record per row after the header (if it has one), rows as pyarrow's CSV reader splits them
  (quoted newlines allowed), every value as bytes, rows with the wrong number of fields counted too.

`accounting_figures` compares that count with the outputs: the accepted rows (the written actionable
partition, or the accepted count of a source whose partition is a snapshot), the written quarantine
partition and the duplicates removed. A gzip-compressed file is counted decompressed; a Parquet file by
the row count of its footer. Pure functions: no Dagster.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from assets.lake import readable

if TYPE_CHECKING:
    from assets.pyramid_map import Source

UTF8_BOM = b"\xef\xbb\xbf"


def jsonl_records(data: bytes) -> int:
    """Non-blank lines of a JSON-lines file."""
    return jsonl_stream_records(io.BytesIO(data))


def jsonl_stream_records(stream: BinaryIO) -> int:
    """Non-blank lines of a JSON-lines file read line by line (a day's file is never held whole)."""
    first = stream.readline().removeprefix(UTF8_BOM)
    count = 1 if first.strip(b" \t\r\n") else 0
    return count + sum(1 for line in stream if line.strip(b" \t\r\n"))


def csv_records(data: bytes, delimiter: str = ",", quote: str = '"', header: bool = True) -> int:
    """Rows after the header (if the file has one) of a CSV file, malformed rows included."""
    data = data.removeprefix(UTF8_BOM)
    if not data.strip():
        return 0
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    fields = next(csv.reader(io.StringIO(first), delimiter=delimiter, quotechar=quote), [])
    names = [f"c{i}" for i in range(max(len(fields), 1))]
    invalid = 0

    def count_invalid(row: list[str | None]) -> str:
        nonlocal invalid
        invalid += 1
        return "skip"

    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if header else 0),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, quote_char=quote, newlines_in_values=True, invalid_row_handler=count_invalid
        ),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.binary() for n in names}),
    )
    return table.num_rows + invalid


def landed_records(files: list[Path], source: Source) -> dict[str, int]:
    """Records per landing file (path -> count), by the format's simple rule (Parquet: its footer)."""
    if source.format == "parquet":
        return {str(path): parquet_rows(path) for path in files}
    counts = {}
    for path in files:
        if source.format == "jsonl":
            with path.open("rb") as stream:
                lines = gzip.open(stream) if source.compression == "gzip" else stream
                counts[str(path)] = jsonl_stream_records(lines)
            continue
        data = path.read_bytes()
        data = gzip.decompress(data) if source.compression == "gzip" else data
        dialect = source.csv
        counts[str(path)] = csv_records(data, dialect.delimiter, dialect.quote, dialect.header)
    return counts


def parquet_rows(path: Path) -> int:
    """Rows of a written Parquet file, from its footer."""
    return pq.ParquetFile(readable(path)).metadata.num_rows


def accounting_figures(
    landed: dict[str, int], raw_rows: int, actionable_rows: int, quarantined_rows: int, duplicates_removed: int
) -> dict:
    """The check's figures: landed records (separate read) against raw rows and against the outputs."""
    landed_total = sum(landed.values())
    outputs = actionable_rows + quarantined_rows + duplicates_removed
    return {
        "landed_records": landed_total,
        "landing_files": len(landed),
        "raw_rows": raw_rows,
        "actionable_rows": actionable_rows,
        "quarantined_rows": quarantined_rows,
        "duplicates_removed": duplicates_removed,
        "balanced": landed_total == raw_rows == outputs,
    }


def accounting_message(source: str, figures: dict) -> str:
    """One line: what balanced, or which count differs from the landing files'."""
    sums = (
        f"{figures['actionable_rows']} actionable + {figures['quarantined_rows']} quarantined + "
        f"{figures['duplicates_removed']} duplicates removed"
    )
    landed = f"{figures['landed_records']} records in {figures['landing_files']} landing file(s)"
    if figures["balanced"]:
        return f"{source}: {landed} = {figures['raw_rows']} raw rows = {sums}"
    return f"{source}: {landed}, but {figures['raw_rows']} raw rows and {sums}; rows were lost or invented"
