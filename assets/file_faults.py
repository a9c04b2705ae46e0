"""Whole-file faults of a landing file: what no row-level quarantine can express.

A line that does not parse is a row fault: it is landed with its raw text and quarantined. A file in
which no record parses at all (sent in UTF-16, or as CSV where JSON lines were due, or cut off) or that
holds no record at all is a file fault: landing stops with a `LandingError` naming the file and the
problem, before anything of the day is written, so that the lake keeps its earlier (complete) data for
that day. CSV files already stop on an empty file, a header without a contract column (renamed
upstream, or a wrong delimiter) and a header that is not UTF-8 (`assets/raw.py`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from assets.pyramid_map import Source
from assets.raw import LandingError


def check_files(table: pa.Table, files: list[Path], source: Source) -> None:
    """Raise LandingError for the first landing file that is empty or in which no record parses."""
    per_file = table.group_by("_source_file").aggregate(
        [
            ("_raw_text", "count", pc.CountOptions(mode="all")),
            ("_raw_text", "count", pc.CountOptions(mode="only_null")),  # a parsed record keeps no raw text
        ]
    )
    names = per_file.column("_source_file").to_pylist()
    all_rows, parsed_rows = (
        per_file.column(i).to_pylist() for i, n in enumerate(per_file.column_names) if n != "_source_file"
    )
    records, good = dict(zip(names, all_rows)), dict(zip(names, parsed_rows))
    for path in files:
        key = next((n for n in records if path.as_posix().endswith(n)), None)
        if key is None and source.format == "jsonl":
            raise LandingError(f"{path}: empty file; expected JSON lines, one {source.name} record per line")
        if key is not None and good[key] == 0:
            hint = _hint(table, key)
            raise LandingError(
                f"{path}: none of its {records[key]} records parses as {source.format} "
                f"({hint}); the file is refused and nothing of the day is written"
            )


def _hint(table: pa.Table, name: str) -> str:
    texts = table.filter(pc.equal(table.column("_source_file"), name)).column("_raw_text").to_pylist()
    if any("\\x" in (t or "") for t in texts[:100]):
        return "not UTF-8: re-deliver it encoded as UTF-8"
    return "not the declared format, a wrong delimiter, or a truncated file"
