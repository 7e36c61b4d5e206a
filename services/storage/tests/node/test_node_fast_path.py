"""The node's fast paths: `state` wakes its waiters only on a change, the peer table's
version moves only on a change (so the transport may cache its headers), received frames
decode in one pass, and the frames shipped or received are the bytes the log writes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from pathlib import Path

import google_crc32c
import pytest
from logmesh_storage.log.batch import encode_batch
from logmesh_storage.log.config import LogConfig
from logmesh_storage.log.entry import Entry, EntryType, encode_records
from logmesh_storage.log.store import FrameDamaged, encode_entry
from logmesh_storage.node.codec import decode_entries
from logmesh_storage.node.driver import Driver
from logmesh_storage.node.frames import FrameCache
from logmesh_storage.node.peers import PeerAddress, PeerTable
from logmesh_storage.node.raft_storage import LogRaftStorage
from logmesh_storage.raft.config import RaftConfig
from logmesh_storage.raft.messages import Message
from logmesh_storage.raft.node import RaftNode

NODE = "storage-0"
WAIT_S = 10.0


class NoPeers:
    def send(self, messages: Iterable[Message]) -> None:
        raise AssertionError(f"a one-node cluster sent {list(messages)}")

    async def close(self) -> None:
        return None


def make_driver(data_dir: Path) -> Driver:
    storage = LogRaftStorage.open(data_dir, LogConfig(), bootstrap_voters=(NODE,))
    raft = RaftNode(
        NODE, storage, RaftConfig(election_timeout_ticks=3), random.Random(1), applied_index=0
    )
    return Driver(raft, storage, NoPeers(), PeerTable(data_dir / "peers.json"), tick_s=0.001)


def test_state_wakes_waiters_on_a_change_not_on_every_write(tmp_path: Path) -> None:
    async def body() -> None:
        driver = make_driver(tmp_path)
        driver.start()
        try:
            assert await driver.wait_for(lambda: driver.serving, driver.state, WAIT_S)
            await driver.propose([b"first"])
            change = driver.state.next_change()
            for i in range(20):
                await driver.propose([b"%d" % i])
            assert driver.serving
            assert not change.is_set()  # 20 writes, no role or health change: no wake-up
        finally:
            await driver.stop()
        assert change.is_set()  # stopping is a change

    asyncio.run(body())


def test_peer_table_version_moves_only_when_the_table_changes(tmp_path: Path) -> None:
    table = PeerTable(tmp_path / "peers.json")
    start = table.version
    assert table.merge([PeerAddress("storage-1", "127.0.0.1:1", 5)])
    moved = table.version
    assert moved > start
    assert not table.merge([PeerAddress("storage-1", "127.0.0.1:9", 4)])  # older generation
    assert table.version == moved
    assert table.merge([PeerAddress("storage-1", "127.0.0.1:2", 6)])
    assert table.version > moved


def _frames(*entries: Entry) -> list[bytes]:
    return [encode_entry(e) for e in entries]


def test_received_frames_decode_in_one_pass_to_the_same_entries() -> None:
    entries = (
        Entry(5, 2, EntryType.DATA, 7, 10, b"a"),
        Entry(6, 2, EntryType.NOOP, 8, 10, b""),
        Entry(7, 3, EntryType.DATA, 8, 11, b"bc"),
        Entry(8, 3, EntryType.RECORDS, 9, 12, encode_records([b"d", b"ef"])),
    )
    assert decode_entries(_frames(*entries)) == entries
    assert decode_entries([]) == ()


def test_received_frames_with_extra_bytes_or_impossible_entries_are_refused() -> None:
    good = _frames(Entry(5, 2, EntryType.DATA, 7, 10, b"a"))
    with pytest.raises(FrameDamaged, match="2 bytes follow the last frame"):
        decode_entries([good[0] + b"xx"])
    with pytest.raises(FrameDamaged, match="ends inside a frame"):
        decode_entries([good[0][:-1]])
    with pytest.raises(FrameDamaged, match="ends inside a frame"):
        decode_entries([good[0], b""])  # two frames announced, one sent
    noop_with_payload = bytearray(encode_entry(Entry(5, 2, EntryType.DATA, 7, 10, b"a")))
    noop_with_payload[40] = int(EntryType.NOOP)  # the type byte, then a fresh CRC
    crc: int = google_crc32c.value(bytes(noop_with_payload[4:]))
    noop_with_payload[:4] = crc.to_bytes(4, "little")
    with pytest.raises(FrameDamaged, match="impossible entry"):
        decode_entries([bytes(noop_with_payload)])
    noop_with_payload[40] = int(EntryType.RECORDS)  # b"a" is no RECORDS payload
    crc = google_crc32c.value(bytes(noop_with_payload[4:]))
    noop_with_payload[:4] = crc.to_bytes(4, "little")
    with pytest.raises(FrameDamaged, match="bad RECORDS entry"):
        decode_entries([bytes(noop_with_payload)])


def test_received_frames_that_skip_an_index_or_go_back_in_term_are_refused() -> None:
    gap = _frames(Entry(5, 2, EntryType.DATA, 7, 10, b"a"), Entry(7, 2, EntryType.DATA, 8, 10, b""))
    with pytest.raises(FrameDamaged, match="not contiguous"):
        decode_entries(gap)
    back = _frames(
        Entry(5, 3, EntryType.DATA, 7, 10, b"a"), Entry(6, 2, EntryType.DATA, 8, 10, b"")
    )
    with pytest.raises(FrameDamaged, match="go back in term"):
        decode_entries(back)


def test_frames_shipped_or_received_are_written_as_the_log_would_encode_them() -> None:
    entries = [
        Entry(5, 2, EntryType.DATA, 7, 10, b"a"),
        Entry(6, 2, EntryType.CONFIG, 8, 10, b"{}"),
        Entry(7, 3, EntryType.DATA, 8, 11, b"bc"),
        Entry(8, 3, EntryType.RECORDS, 9, 12, encode_records([b"d", b"ef"])),
    ]
    cache = FrameCache()
    received = decode_entries(_frames(*entries), cache)  # a follower's view
    assert len(cache) == 1  # one batch, not one frame per entry
    batch = cache.take_batch(received)
    assert batch == encode_batch(entries)
    assert len(cache) == 0  # taken once
    assert cache.take_batch(received) is None  # gone: the caller encodes


def test_a_ready_made_of_several_received_batches_is_written_as_one() -> None:
    entries = [Entry(5 + k, 2, EntryType.DATA, 7 + k, 10, bytes([k])) for k in range(5)]
    cache = FrameCache()
    received = decode_entries(_frames(*entries[:2]), cache) + decode_entries(
        _frames(*entries[2:]), cache
    )
    assert cache.take_batch(received) == encode_batch(entries)


def test_a_ready_that_splits_a_cached_batch_is_a_miss() -> None:
    entries = [Entry(5 + k, 2, EntryType.DATA, 7 + k, 10, bytes([k])) for k in range(3)]
    cache = FrameCache()
    received = decode_entries(_frames(*entries), cache)
    assert cache.take_batch(received[:2]) is None  # the caller encodes


def test_frame_cache_misses_on_another_entry_object_and_stays_bounded() -> None:
    entry = Entry(5, 2, EntryType.DATA, 7, 10, b"a")
    batch = encode_batch([entry])
    cache = FrameCache(held_bytes_max=2 * len(batch.data))
    cache.put_batch([entry], batch)
    twin = Entry(5, 2, EntryType.DATA, 7, 10, b"a")  # equal, but not the cached object
    assert cache.take_batch([twin]) is None
    for k in range(5):
        other = Entry(k + 1, 1, EntryType.DATA, k, 0, b"a")
        cache.put_batch([other], encode_batch([other]))
        assert len(cache) <= 2
