"""The asyncio driver on a one-voter cluster over the real log engine: proposals get dense
offsets once durable, concurrent proposals share fsyncs, a restart neither loses nor repeats,
and writes are refused where they cannot succeed."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from logmesh_storage.log.config import LogConfig
from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.node.driver import INLINE_PERSIST_IDLE_S, Driver, _Waiter
from logmesh_storage.node.peers import PeerTable
from logmesh_storage.node.raft_storage import LogRaftStorage
from logmesh_storage.raft.config import RaftConfig
from logmesh_storage.raft.messages import Message
from logmesh_storage.raft.node import RaftNode
from logmesh_storage.raft.types import Role

from logmesh.errors import NoLeaderError, UnavailableError

NODE = "storage-0"
WAIT_S = 10.0


class NoPeers:
    """A transport for a cluster of one: nothing may be sent."""

    def send(self, messages: Iterable[Message]) -> None:
        raise AssertionError(f"a one-node cluster sent {list(messages)}")

    async def close(self) -> None:
        return None


class CountingStorage(LogRaftStorage):
    saves = 0
    threads: list[str] = []

    def save(self, *args: Any) -> None:
        type(self).saves += 1
        type(self).threads.append(threading.current_thread().name)
        super().save(*args)


def make_driver(data_dir: Path, *, bootstrap: bool = True) -> Driver:
    storage = CountingStorage.open(
        data_dir, LogConfig(), bootstrap_voters=(NODE,) if bootstrap else ()
    )
    hard_state, _ = storage.initial_state()
    raft = RaftNode(
        NODE,
        storage,
        RaftConfig(election_timeout_ticks=3),
        random.Random(1),
        applied_index=hard_state.commit_index,
    )
    return Driver(
        raft,
        storage,
        NoPeers(),
        PeerTable(data_dir / "peers.json"),
        tick_s=0.001,
    )


def run(data_dir: Path, body: Callable[[Driver], Awaitable[None]], **kwargs: Any) -> None:
    async def main() -> None:
        driver = make_driver(data_dir, **kwargs)
        driver.start()
        try:
            await body(driver)
        finally:
            await driver.stop()

    asyncio.run(main())


async def until_leader(driver: Driver) -> None:
    assert await driver.wait_for(lambda: driver.raft.role is Role.LEADER, driver.state, WAIT_S)


def test_proposals_get_dense_offsets_once_applied(tmp_path: Path) -> None:
    async def body(driver: Driver) -> None:
        await until_leader(driver)
        first = await driver.propose([b"a", b"b", b"c"])
        assert first == 0
        assert await driver.propose([b"d"]) == 3
        assert driver.committed_next_offset == 4
        records = driver.storage.read_records(0, 10, driver.applied_index)
        assert [r.payload for r in records] == [b"a", b"b", b"c", b"d"]

    run(tmp_path, body)


def test_concurrent_proposals_share_fsyncs(tmp_path: Path) -> None:
    async def body(driver: Driver) -> None:
        await until_leader(driver)
        saves_before = CountingStorage.saves
        offsets = await asyncio.gather(*(driver.propose([b"%d" % i]) for i in range(200)))
        assert sorted(offsets) == list(range(200))
        assert CountingStorage.saves - saves_before < 100  # group commit: far fewer than 200

    run(tmp_path, body)


def test_an_idle_node_writes_a_lone_proposal_on_the_loop_a_busy_one_in_the_writer(
    tmp_path: Path,
) -> None:
    async def body(driver: Driver) -> None:
        await until_leader(driver)
        await asyncio.sleep(INLINE_PERSIST_IDLE_S * 2)  # idle: what the rule measures is time
        CountingStorage.threads.clear()
        assert await driver.propose([b"lone"]) == 0
        assert CountingStorage.threads == [threading.current_thread().name]
        CountingStorage.threads.clear()
        offsets = await asyncio.gather(*(driver.propose([b"%d" % i]) for i in range(100)))
        assert sorted(offsets) == list(range(1, 101))
        assert any(name.startswith("raft-writer") for name in CountingStorage.threads)

    run(tmp_path, body)


def test_consumers_are_woken_by_commits(tmp_path: Path) -> None:
    async def body(driver: Driver) -> None:
        await until_leader(driver)
        start = driver.committed_next_offset
        change = driver.applied.next_change()
        waiter = asyncio.ensure_future(change.wait())
        await driver.propose([b"x"])
        await asyncio.wait_for(waiter, WAIT_S)
        assert driver.committed_next_offset == start + 1

    run(tmp_path, body)


def test_a_restart_neither_loses_nor_repeats_records(tmp_path: Path) -> None:
    async def write(driver: Driver) -> None:
        await until_leader(driver)
        await driver.propose([b"r%d" % i for i in range(10)])

    async def write_more(driver: Driver) -> None:
        assert driver.committed_next_offset == 10
        await until_leader(driver)
        assert await driver.propose([b"r10"]) == 10
        records = driver.storage.read_records(0, 100, driver.applied_index)
        assert [r.payload for r in records] == [b"r%d" % i for i in range(11)]

    run(tmp_path, write)
    run(tmp_path, write_more)


def test_a_node_outside_any_cluster_refuses_writes(tmp_path: Path) -> None:
    async def body(driver: Driver) -> None:
        with pytest.raises(NoLeaderError):
            await driver.propose([b"x"])

    run(tmp_path, body, bootstrap=False)


def test_a_stopping_node_refuses_new_writes(tmp_path: Path) -> None:
    async def body(driver: Driver) -> None:
        await until_leader(driver)
        driver.accepting_writes = False
        with pytest.raises(UnavailableError, match="shutting down"):
            await driver.propose([b"x"])

    run(tmp_path, body)


def test_an_applied_entry_resolves_only_the_proposal_of_its_own_term() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        mine = _Waiter(term=2, count=3, future=loop.create_future())
        Driver._resolve(mine, Entry(9, 2, EntryType.DATA, 41, 0, b"c"))
        assert mine.future.result() == 39  # three records ending at offset 41

        replaced = _Waiter(term=2, count=1, future=loop.create_future())
        Driver._resolve(replaced, Entry(9, 3, EntryType.DATA, 41, 0, b"other"))
        with pytest.raises(UnavailableError, match="another entry took its place"):
            replaced.future.result()

        change = _Waiter(term=2, count=0, future=loop.create_future())
        Driver._resolve(change, Entry(9, 2, EntryType.CONFIG, 42, 0, b"{}"))
        assert change.future.result() == 9

    asyncio.run(body())
