"""The peer table: newest generation wins per node, and it survives a restart."""

from __future__ import annotations

from pathlib import Path

from logmesh_storage.node.peers import PeerAddress, PeerTable


def test_newer_generation_replaces_an_address_and_older_one_does_not(tmp_path: Path) -> None:
    table = PeerTable(tmp_path / "peers.json", [PeerAddress("storage-1", "h:1", 5)])
    assert not table.merge([PeerAddress("storage-1", "h:0", 4)])
    assert table.address("storage-1") == "h:1"
    assert table.merge([PeerAddress("storage-1", "h:2", 6), PeerAddress("storage-2", "h:3", 1)])
    assert table.address("storage-1") == "h:2"
    assert table.address("storage-2") == "h:3"
    assert table.address("storage-9") is None


def test_saved_table_loads_back(tmp_path: Path) -> None:
    table = PeerTable(tmp_path / "peers.json")
    table.merge([PeerAddress("storage-0", "h:1", 2), PeerAddress("storage-1", "h:2", 3)])
    table.save(table.snapshot())
    loaded = PeerTable.load(tmp_path)
    assert loaded.snapshot() == table.snapshot()


def test_a_missing_file_is_an_empty_table(tmp_path: Path) -> None:
    assert PeerTable.load(tmp_path).snapshot() == []
