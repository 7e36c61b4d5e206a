"""logmesh.client.LogClient against real storage nodes: the pipelined producer (produce_many).

produce_many sends records on one ProduceStream; what it may resend after an error rests on the
server's promise that a refused request (NOT_LEADER, NO_LEADER, malformed) ends the stream with
nothing sent after it appended. These tests hold both sides to it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

import pytest

from logmesh.client import LogClient
from logmesh.cluster import StorageCluster
from logmesh.errors import InvalidArgumentError, OutcomeUnknownError

_values = (f"client-{i}".encode() for i in itertools.count())


def client(cluster: StorageCluster, *addresses: str, deadline_s: float = 5.0) -> LogClient:
    assert cluster.certs_dir is not None
    return LogClient(list(addresses), cluster.certs_dir, "root", deadline_s=deadline_s)


async def read_back(log: LogClient, first: int, count: int) -> list[bytes]:
    records = []
    async for record in log.consume_stream(first, batch_records_max=100):
        records.append(record)
        if len(records) == count:
            break
    assert [r.offset for r in records] == list(range(first, first + count))
    return [r.value for r in records]


def test_produce_many_follows_the_leader_and_keeps_order(storage_cluster: StorageCluster) -> None:
    values = [next(_values) for _ in range(600)]
    # A follower first: its NOT_LEADER answer names the leader, and everything is resent there.
    # (With grpc.aio's own write() the refusal often reads as INTERNAL: see client._send.)
    addresses = [n.address for n in storage_cluster.followers()] + [
        storage_cluster.leader().address
    ]

    async def main() -> None:
        async with client(storage_cluster, *addresses) as log:
            offsets = [offset async for offset in log.produce_many(values, window=64)]
            assert offsets == list(range(offsets[0], offsets[0] + len(values)))
            assert await read_back(log, offsets[0], len(values)) == values

    asyncio.run(main())


def test_produce_many_stops_at_an_invalid_record_and_writes_nothing_after_it(
    storage_cluster: StorageCluster,
) -> None:
    before = [next(_values) for _ in range(30)]
    after = [next(_values) for _ in range(30)]
    too_big = b"x" * (2 << 20)  # above the nodes' default record size limit (1 MiB)

    async def main() -> None:
        async with client(storage_cluster, storage_cluster.leader().address) as log:
            offsets: list[int] = []
            with pytest.raises(InvalidArgumentError, match="split it or raise --record-bytes-max"):
                async for offset in log.produce_many([*before, too_big, *after], window=16):
                    offsets.append(offset)
            assert offsets == list(range(offsets[0], offsets[0] + len(before)))
            # Nothing sent after the refused record was appended: the next one comes right after.
            assert await log.produce(b"next") == offsets[-1] + 1

    asyncio.run(main())


def test_produce_many_writes_what_a_failing_source_gave_then_raises(
    storage_cluster: StorageCluster,
) -> None:
    values = [next(_values) for _ in range(10)]

    async def source() -> AsyncIterator[bytes]:
        for value in values:
            yield value
        raise RuntimeError("the source broke")

    async def main() -> None:
        async with client(storage_cluster, storage_cluster.leader().address) as log:
            offsets: list[int] = []
            with pytest.raises(RuntimeError, match="the source broke"):
                async for offset in log.produce_many(source()):
                    offsets.append(offset)
            assert await read_back(log, offsets[0], len(values)) == values

    asyncio.run(main())


def test_produce_many_reconnects_to_a_new_leader_when_nothing_is_in_flight(
    make_storage_cluster: Callable[..., StorageCluster],
) -> None:
    cluster = make_storage_cluster()
    first_half = [next(_values) for _ in range(20)]
    second_half = [next(_values) for _ in range(20)]

    async def main() -> None:
        leader = cluster.leader()
        go_on = asyncio.Event()

        async def source() -> AsyncIterator[bytes]:
            for value in first_half:
                yield value
            await go_on.wait()  # the leader dies meanwhile, with nothing in flight
            for value in second_half:
                yield value

        async with client(cluster, *(n.address for n in cluster.nodes)) as log:
            offsets: list[int] = []
            async for offset in log.produce_many(source()):
                offsets.append(offset)
                if len(offsets) == len(first_half):
                    cluster.kill(leader)
                    assert await asyncio.to_thread(cluster.leader) != leader
                    go_on.set()
            assert offsets == list(range(offsets[0], offsets[0] + 40))
        live = [n.address for n in cluster.nodes if n is not leader]
        async with client(cluster, *live) as log:
            assert await read_back(log, offsets[0], 40) == first_half + second_half

    asyncio.run(main())


def test_produce_many_reports_unanswered_records_as_unknown(
    make_storage_cluster: Callable[..., StorageCluster],
) -> None:
    cluster = make_storage_cluster()

    async def main() -> None:
        leader = cluster.leader()
        async with client(cluster, leader.address, deadline_s=1.0) as log:
            assert [o async for o in log.produce_many([b"before"])] == [0]
            cluster.pause(leader)  # takes the record, never answers
            try:
                with pytest.raises(
                    OutcomeUnknownError,
                    match=r"no answer within 1 s: 1 record\(s\) sent may or may not",
                ):
                    assert [o async for o in log.produce_many([b"in doubt"])] == []
            finally:
                cluster.resume(leader)

    asyncio.run(main())


def test_produce_many_waits_for_a_source_slower_than_the_deadline(
    storage_cluster: StorageCluster,
) -> None:
    """The deadline is per record sent, not per pause of the source (a user typing lines into
    `logmesh produce`). grpc.aio cancels a whole call when a read of it is cancelled, so the
    client must not time out its reads: it did, and the stream died with CancelledError once
    the source had paused for longer than the deadline."""
    deadline_s = 0.2
    values = [next(_values) for _ in range(3)]

    async def source() -> AsyncIterator[bytes]:
        for value in values:
            yield value
            await asyncio.sleep(deadline_s * 3)  # the source's pause: the input of this test

    async def main() -> None:
        async with client(
            storage_cluster, storage_cluster.leader().address, deadline_s=deadline_s
        ) as log:
            offsets = [offset async for offset in log.produce_many(source(), window=4)]
            assert offsets == list(range(offsets[0], offsets[0] + len(values)))
            assert await read_back(log, offsets[0], len(values)) == values

    asyncio.run(main())
