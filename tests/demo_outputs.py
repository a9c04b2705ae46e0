"""Fingerprint a data root's outputs, and compare two fingerprints: proof that a refactor left the
demo's outputs byte-identical.

    python -m tests.demo_outputs snapshot data before.json     # on the old code, after `pyramid demo`
    python -m tests.demo_outputs snapshot data after.json      # on the new code, after `pyramid demo`
    python -m tests.demo_outputs compare before.json after.json

A fingerprint holds the SHA-256 of every file of the lake and the reports (Data Docs excepted: GX
stamps them with the run time; saved validation results are hashed without their run stamps), and,
per view of the analyst catalog, its row count and an order-independent hash of its rows. Byte identity of Parquet files assumes the same library versions
on both sides; the view hashes say whether the contents agree when the bytes do not.
"""  # noqa: E501

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import duckdb

SKIPPED_FOLDERS = ("data_docs",)
RUN_STAMPS = (
    ("id",),
    ("meta", "validation_time"),
    ("meta", "run_id", "run_time"),
    ("meta", "batch_markers", "ge_load_time"),
)


def content_hash(path: Path) -> str:
    """SHA-256 of the file; for a saved validation result, of its JSON without the run's stamps."""
    if "validations" not in path.parts or path.suffix != ".json":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    document = json.loads(path.read_text())
    for *parents, key in RUN_STAMPS:
        node = document
        for parent in parents:
            node = node.get(parent, {})
        node.pop(key, None)
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def file_hashes(root: Path) -> dict[str, str]:
    hashes = {}
    for folder in (root / "lake", root / "reports"):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(root).as_posix()
            if any(f"/{skipped}/" in f"/{relative}" for skipped in SKIPPED_FOLDERS):
                continue
            hashes[relative] = content_hash(path)
    return hashes


def view_hashes(warehouse: Path) -> dict[str, list]:
    if not warehouse.exists():
        return {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = [r[0] for r in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]
        return {
            name: list(con.sql(f'SELECT count(*), coalesce(sum(hash(t)), 0)::VARCHAR FROM "{name}" t').fetchall()[0])
            for name in sorted(names)
        }
    finally:
        con.close()


def snapshot(root: Path) -> dict:
    return {"files": file_hashes(root), "views": view_hashes(root / "warehouse.duckdb")}


def compare(before: dict, after: dict) -> list[str]:
    problems = []
    for kind in ("files", "views"):
        old, new = before[kind], after[kind]
        problems += [f"{kind}: missing after: {k}" for k in sorted(old.keys() - new.keys())]
        problems += [f"{kind}: new after: {k}" for k in sorted(new.keys() - old.keys())]
        problems += [f"{kind}: differs: {k}" for k in sorted(old.keys() & new.keys()) if old[k] != new[k]]
    return problems


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "snapshot":
        Path(argv[2]).write_text(json.dumps(snapshot(Path(argv[1])), indent=1, sort_keys=True))
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        before, after = (json.loads(Path(p).read_text()) for p in argv[1:])
        problems = compare(before, after)
        for problem in problems:
            print(problem)
        print(
            f"{len(before['files'])} files, {len(before['views'])} views compared: "
            f"{'identical' if not problems else f'{len(problems)} differences'}"
        )
        return 1 if problems else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
