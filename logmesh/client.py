"""The logmesh client: produce and consume over `log.v1.Log` with mutual TLS.

One channel per server address. Writes go to the leader: a NOT_LEADER answer names it and the
client follows the hint at once; with no hint it tries the next address. A write is retried only
when it was certainly not proposed (NOT_LEADER, NO_LEADER, a connection that never opened);
a deadline or a connection lost mid-call surfaces as OutcomeUnknownError, never as a retry that
could duplicate the record. Reads go to any server (every node serves only committed records).

The balancing resolver of DESIGN §6 (discovery Watch, round-robin reads, circuit breakers) grows
out of this class; this module may not import any service package.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc

from logmesh._gen.log.v1 import log_pb2, log_pb2_grpc
from logmesh.errors import (
    LogmeshError,
    NoLeaderError,
    NotLeaderError,
    OffsetOutOfRangeError,
    UnavailableError,
    from_rpc_error,
)
from logmesh.tls import channel_credentials, channel_options

T = TypeVar("T")

DEADLINE_S = 5.0
WRITE_ATTEMPTS_MAX = 8
# Between attempts while no leader is known: an election takes a few hundred ms.
NO_LEADER_BACKOFF_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0)


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    value: bytes
    term: int
    append_time_ms: int


@dataclass(frozen=True, slots=True)
class ServerInfo:
    id: str
    rpc_addr: str
    is_leader: bool
    role: str
    lag: int


def _record(r: log_pb2.Record) -> Record:
    return Record(r.offset, r.value, r.term, r.append_time.ToMilliseconds())


class LogClient:
    """An asyncio client for a logmesh cluster (direct to storage nodes, or via the gateway)."""

    def __init__(
        self,
        addresses: Sequence[str],
        cert_dir: Path | str,
        identity: str = "root",
        *,
        deadline_s: float = DEADLINE_S,
    ) -> None:
        if not addresses:
            raise ValueError("LogClient needs at least one server address (host:port)")
        self._addresses = list(dict.fromkeys(addresses))
        self._credentials = channel_credentials(cert_dir, identity)
        self._deadline_s = deadline_s
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._leader: str | None = None
        self._next_read = 0

    async def __aenter__(self) -> LogClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        await asyncio.gather(*(c.close() for c in channels.values()))

    def _stub(self, address: str) -> log_pb2_grpc.LogAsyncStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.secure_channel(address, self._credentials, channel_options())
            self._channels[address] = channel
        return log_pb2_grpc.LogStub(channel)

    # ---- writes ----------------------------------------------------------------------------

    async def produce(self, value: bytes) -> int:
        """Append one record; its offset once a majority has it on disk."""
        request = log_pb2.ProduceRequest(record=log_pb2.Record(value=value))
        response: log_pb2.ProduceResponse = await self._write(
            lambda stub: stub.Produce(request, timeout=self._deadline_s)
        )
        return response.offset

    async def produce_batch(self, values: Sequence[bytes]) -> range:
        """Append records as one unit; the offsets they got, in order."""
        request = log_pb2.ProduceBatchRequest()
        add = request.records.add  # in place: half the cost of Records built, then copied in
        for value in values:
            add(value=value)
        response: log_pb2.ProduceBatchResponse = await self._write(
            lambda stub: stub.ProduceBatch(request, timeout=self._deadline_s)
        )
        return range(response.first_offset, response.first_offset + response.count)

    async def _write(self, call: Callable[[log_pb2_grpc.LogAsyncStub], Awaitable[T]]) -> T:
        last: LogmeshError = NoLeaderError()
        backoff = iter(NO_LEADER_BACKOFF_S)
        tried: set[str] = set()
        for _ in range(WRITE_ATTEMPTS_MAX):
            address = self._leader or self._untried(tried)
            tried.add(address)
            try:
                return await call(self._stub(address))
            except grpc.aio.AioRpcError as e:
                last = from_rpc_error(e, write=True)
            if isinstance(last, NotLeaderError) and last.leader_addr:
                self._leader = last.leader_addr
                continue
            self._leader = None
            if isinstance(last, NotLeaderError | NoLeaderError | UnavailableError):
                if len(tried) >= len(self._addresses):
                    tried.clear()
                    await asyncio.sleep(next(backoff, NO_LEADER_BACKOFF_S[-1]))
                continue
            raise last
        raise last

    def _untried(self, tried: set[str]) -> str:
        for address in self._addresses:
            if address not in tried:
                return address
        return self._addresses[0]

    # ---- reads -----------------------------------------------------------------------------

    def _read_address(self) -> str:
        address = self._addresses[self._next_read % len(self._addresses)]
        self._next_read += 1
        return address

    async def consume(self, offset: int) -> Record:
        """The committed record at `offset`."""
        request = log_pb2.ConsumeRequest(offset=offset)
        last: LogmeshError = UnavailableError()
        for _ in self._addresses:
            try:
                response = await self._stub(self._read_address()).Consume(
                    request, timeout=self._deadline_s
                )
                return _record(response.record)
            except grpc.aio.AioRpcError as e:
                last = from_rpc_error(e)
                if not isinstance(last, UnavailableError):
                    raise last from None
        raise last

    async def consume_range(self, offset: int, records_max: int) -> AsyncIterator[Record]:
        """Committed records from `offset` up to the current end (at most records_max)."""
        for o in range(offset, offset + records_max):
            try:
                yield await self.consume(o)
            except OffsetOutOfRangeError:
                return

    async def consume_stream(
        self, offset: int, *, batch_records_max: int = 0
    ) -> AsyncIterator[Record]:
        """Records from `offset` on, following the tail until the caller stops iterating.
        batch_records_max > 0 asks the server for up to that many records per message."""
        request = log_pb2.ConsumeRequest(offset=offset, max_batch_records=batch_records_max)
        stub = self._stub(self._read_address())
        call = stub.ConsumeStream(request)
        try:
            async for response in call:
                for r in response.records or [response.record]:
                    yield _record(r)
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    async def servers(self) -> list[ServerInfo]:
        """The cluster's servers as the first reachable node sees them."""
        last: LogmeshError = UnavailableError()
        for _ in self._addresses:
            try:
                response = await self._stub(self._read_address()).GetServers(
                    log_pb2.GetServersRequest(), timeout=self._deadline_s
                )
            except grpc.aio.AioRpcError as e:
                last = from_rpc_error(e)
                continue
            return [
                ServerInfo(s.id, s.rpc_addr, s.is_leader, s.role, s.lag) for s in response.servers
            ]
        raise last
