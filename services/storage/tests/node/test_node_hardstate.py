"""The hard state file: atomic replace, exact round trip, clear errors on damage."""

from __future__ import annotations

from pathlib import Path

import pytest
from logmesh_storage.node.errors import NodeStateError
from logmesh_storage.node.hardstate import HardStateFile
from logmesh_storage.raft.types import HardState


def test_a_node_that_never_saved_has_the_zero_hard_state(tmp_path: Path) -> None:
    assert HardStateFile(tmp_path).load() == HardState()


def test_saved_hard_state_reads_back_exactly(tmp_path: Path) -> None:
    HardStateFile(tmp_path).save(HardState(term=7, vote="storage-2", commit_index=41))
    assert HardStateFile(tmp_path).load() == HardState(7, "storage-2", 41)
    HardStateFile(tmp_path).save(HardState(term=8, vote=None, commit_index=41))
    assert HardStateFile(tmp_path).load() == HardState(8, None, 41)


def test_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    HardStateFile(tmp_path).save(HardState(1, "storage-0", 0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hardstate.json"]


def test_a_damaged_file_is_refused_with_advice(tmp_path: Path) -> None:
    (tmp_path / "hardstate.json").write_text('{"version": 1, "term": ')
    with pytest.raises(NodeStateError, match="restore the data directory or wipe it"):
        HardStateFile(tmp_path).load()


def test_a_file_without_a_term_is_refused(tmp_path: Path) -> None:
    (tmp_path / "hardstate.json").write_text('{"version": 1, "vote": null, "commit": 0}')
    with pytest.raises(NodeStateError, match="term"):
        HardStateFile(tmp_path).load()


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "hardstate.json").write_text('{"version": 9, "term": 1, "vote": null, "commit": 0}')
    with pytest.raises(NodeStateError, match="format version 9"):
        HardStateFile(tmp_path).load()
