"""The one atomic writer (assets.lake.atomic_path): a reader sees the old file or the new one, never a part."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.lake import atomic_path


def test_a_finished_block_replaces_the_file_and_leaves_no_temporary(tmp_path: Path):
    target = tmp_path / "sub" / "table.json"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.parent == target.parent  # unique names, same folder
        assert first.name.startswith(".table.json.") and first.name.endswith(".tmp")
        first.write_text("old")
        second.write_text("new")
    assert target.read_text() == "old"  # the outer block finished last
    assert [p.name for p in target.parent.iterdir()] == ["table.json"]


def test_a_failed_block_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path):
    target = tmp_path / "table.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]
