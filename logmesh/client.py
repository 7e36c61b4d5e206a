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
import contextlib
import time
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc
from grpc._cython import cygrpc  # type: ignore[attr-defined]  # see _send

from logmesh._gen.log.v1 import log_pb2, log_pb2_grpc
from logmesh.errors import (
    InvalidArgumentError,
    LogmeshError,
    NoLeaderError,
    NotLeaderError,
    OffsetOutOfRangeError,
    OutcomeUnknownError,
    PermissionDeniedError,
    UnavailableError,
    from_rpc_error,
)
from logmesh.tls import channel_credentials, channel_options

T = TypeVar("T")

DEADLINE_S = 5.0
WRITE_ATTEMPTS_MAX = 8
# Between attempts while no leader is known: an election takes a few hundred ms.
NO_LEADER_BACKOFF_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0)
# produce_many: records sent on the stream and not yet answered, at most.
PRODUCE_WINDOW = 256


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

    async def produce_many(
        self, values: Iterable[bytes] | AsyncIterable[bytes], *, window: int = PRODUCE_WINDOW
    ) -> AsyncIterator[int]:
        """Append each value as its own record, in order, over one ProduceStream with up to
        `window` records unanswered; yields each record's offset as a majority has it on disk.
        Many times faster than `produce` in a loop (no call per record, records in flight
        share fsyncs).

        NOT_LEADER and NO_LEADER are followed: the server refused that record and proposed
        nothing sent after it, so the unanswered records are sent again to the leader; a stream
        that breaks with no record in flight is opened again, on the leader. Any other error
        ends the iteration: InvalidArgumentError and PermissionDeniedError leave every record
        not yet yielded unwritten; otherwise, if records were unanswered, OutcomeUnknownError
        says how many may or may not have been appended. A record gets no answer within the
        client's deadline: OutcomeUnknownError too. An exception from `values` is raised once
        every record taken before it is written. Stopping the iteration early cancels the
        stream: records sent and not yet yielded have an unknown outcome."""
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        feed = _Feed(_values_from(values))
        backoff = iter(NO_LEADER_BACKOFF_S)
        tried: set[str] = set()
        failures = 0
        try:
            while True:
                address = self._leader or self._untried(tried)
                tried.add(address)
                call = self._stub(address).ProduceStream()
                answers = _Answers(call)
                feed.restart(window)
                writer = asyncio.ensure_future(feed.write_to(call))
                try:
                    while (reply := await self._next_answer(answers, feed.unanswered)) is not None:
                        feed.answered()
                        failures = 0
                        yield reply.offset
                except grpc.aio.AioRpcError as e:
                    error = from_rpc_error(e, write=True)
                    # Safe to send the unanswered records again: the server refused one (and
                    # took nothing after it), the channel never connected, or none was sent.
                    refused = (
                        isinstance(error, NotLeaderError | NoLeaderError)
                        or _never_connected(e)
                        or (
                            not feed.unanswered
                            and isinstance(error, UnavailableError | OutcomeUnknownError)
                        )
                    )
                    failures += 1
                    if not refused or failures >= WRITE_ATTEMPTS_MAX:
                        raise self._stream_error(error, refused, len(feed.unanswered)) from None
                    await self._next_target(error, tried, backoff)
                    continue
                finally:
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await writer
                    answers.close()
                    call.cancel()
                if feed.unanswered:
                    raise OutcomeUnknownError(
                        f"the stream ended with {len(feed.unanswered)} record(s) unanswered: "
                        "they may or may not have been appended; check the log before sending "
                        "them again"
                    )
                if feed.error is not None:
                    raise feed.error  # every record taken before it was written
                return
        finally:
            feed.close()

    async def _next_answer(
        self, answers: _Answers, unanswered: deque[tuple[bytes, float]]
    ) -> log_pb2.ProduceResponse | None:
        """The next answer on a produce stream, None at its end; OutcomeUnknownError if the
        oldest unanswered record has waited longer than the client's deadline (no deadline
        while none is)."""
        while True:
            wait_s = self._deadline_s
            if unanswered:
                wait_s = unanswered[0][1] + self._deadline_s - time.monotonic()
                if wait_s <= 0:
                    raise OutcomeUnknownError(
                        f"no answer within {self._deadline_s:g} s: {len(unanswered)} record(s) "
                        "sent may or may not have been appended; check the log before sending "
                        "them again"
                    )
            reply = await answers.next(wait_s)
            if reply is None:
                continue  # re-checked above: nothing was waiting, or the oldest is now late
            if reply is grpc.aio.EOF:
                return None
            assert isinstance(reply, log_pb2.ProduceResponse)
            return reply

    @staticmethod
    def _stream_error(error: LogmeshError, refused: bool, unanswered: int) -> LogmeshError:
        if (
            refused
            or not unanswered
            or isinstance(error, InvalidArgumentError | PermissionDeniedError)
        ):
            return error
        return OutcomeUnknownError(
            f"{error} ({unanswered} record(s) sent were not answered: they may or may not have "
            "been appended; check the log before sending them again)"
        )

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
            if isinstance(last, NotLeaderError | NoLeaderError | UnavailableError):
                await self._next_target(last, tried, backoff)
                continue
            raise last
        raise last

    async def _next_target(
        self, error: LogmeshError, tried: set[str], backoff: Iterator[float]
    ) -> None:
        """After a write was refused: follow a NOT_LEADER hint at once; otherwise forget the
        leader and, once every address was tried, wait the next backoff step first."""
        if isinstance(error, NotLeaderError) and error.leader_addr:
            self._leader = error.leader_addr
            return
        self._leader = None
        if len(tried) >= len(self._addresses):
            tried.clear()
            await asyncio.sleep(next(backoff, NO_LEADER_BACKOFF_S[-1]))

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


class _Answers:
    """The answers of one produce stream, awaited with a timeout that leaves the read going:
    grpc.aio cancels the whole call when a read of it is cancelled (asyncio.timeout around
    call.read() would end the stream at the first quiet spell of the source)."""

    def __init__(
        self, call: grpc.aio.StreamStreamCall[log_pb2.ProduceRequest, log_pb2.ProduceResponse]
    ) -> None:
        self._call = call
        self._read: asyncio.Future[object] | None = None

    async def next(self, timeout_s: float) -> object | None:
        """The next answer or grpc.aio.EOF (AioRpcError raised as read() raises it); None if
        none came within timeout_s (the read goes on, for the next call)."""
        if self._read is None:
            self._read = asyncio.ensure_future(self._call.read())
        done, _ = await asyncio.wait({self._read}, timeout=timeout_s)
        if not done:
            return None
        read, self._read = self._read, None
        return read.result()

    def close(self) -> None:
        """Stop a read still going (the call is being cancelled anyway)."""
        if self._read is not None:
            self._read.cancel()
            self._read.add_done_callback(_retrieve)
            self._read = None


def _retrieve(future: asyncio.Future[object]) -> None:
    """Mark a dropped read's outcome as seen, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


class _Feed:
    """produce_many's records between the caller's source and a stream: `unanswered` were
    written to the current stream (value, when), `unsent` wait for one. A value being pulled
    from the source when a stream dies stays pulled (the pull is shielded from the writer's
    cancellation) and goes on the next stream, so a stream's end never loses one."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._pull: asyncio.Future[tuple[bool, bytes]] | None = None
        self.unsent: deque[bytes] = deque()
        self.unanswered: deque[tuple[bytes, float]] = deque()
        self.exhausted = False
        self.error: Exception | None = None  # what the source raised
        self._slots = asyncio.Semaphore(0)  # records the current stream may still take

    def restart(self, window: int) -> None:
        """Before a new stream: records the last one did not answer go first, in order."""
        self.unsent.extendleft(value for value, _ in reversed(self.unanswered))
        self.unanswered.clear()
        self._slots = asyncio.Semaphore(window)

    def answered(self) -> None:
        self.unanswered.popleft()
        self._slots.release()

    async def write_to(
        self,
        call: grpc.aio.StreamStreamCall[log_pb2.ProduceRequest, log_pb2.ProduceResponse],
    ) -> None:
        """Write records to `call` (as many unanswered as restart() allowed); half-close
        after the last."""
        try:
            while True:
                await self._slots.acquire()
                if not self.unsent and not await self._pull_one():
                    break
                if call.done():
                    return  # the stream ended: what is unsent waits for the next one
                value = self.unsent.popleft()
                self.unanswered.append((value, time.monotonic()))  # before its answer can come
                request = log_pb2.ProduceRequest(record=log_pb2.Record(value=value))
                if not await _send(call, request):
                    return
            await call.done_writing()
        except grpc.aio.AioRpcError:
            return  # the reader gets the call's error

    async def _pull_one(self) -> bool:
        """Move the source's next value to `unsent`; False once the source is done."""
        if self.exhausted:
            return False
        if self._pull is None:
            self._pull = asyncio.ensure_future(_next_value(self._source))
        try:
            more, value = await asyncio.shield(self._pull)
        except Exception as e:  # the source failed: end like an exhausted one, then raise
            self._pull, self.exhausted, self.error = None, True, e
            return False
        self._pull = None
        if not more:
            self.exhausted = True
            return False
        self.unsent.append(value)
        return True

    def close(self) -> None:
        if self._pull is not None:
            self._pull.cancel()


async def _send(
    call: grpc.aio.StreamStreamCall[log_pb2.ProduceRequest, log_pb2.ProduceResponse],
    request: log_pb2.ProduceRequest,
) -> bool:
    """Write `request` on `call`; False if the call ended first (read() tells its status).

    grpc.aio's own write() replaces the status the server sent with INTERNAL "Internal error
    from Core" when the write loses a race with the server ending the stream (grpc/grpc#36066;
    the fix, grpc/grpc#43486, is not released): a NOT_LEADER refusal of a pipelined stream then
    reads as an unknown outcome, two times in three here. This sends the way write() does,
    minus that overwrite. With a grpcio whose call lacks these attributes it uses write()."""
    cython_call = getattr(call, "_cython_call", None)
    metadata_sent = getattr(call, "_metadata_sent", None)
    if cython_call is None or not isinstance(metadata_sent, asyncio.Event):
        await call.write(request)
        return True
    if not call.done() and not metadata_sent.is_set():
        await metadata_sent.wait()
    if call.done():
        return False
    try:
        await cython_call.send_serialized_message(request.SerializeToString())
    except cygrpc.InternalError:
        return False  # the stream was closed under the write
    return True


async def _next_value(source: AsyncIterator[bytes]) -> tuple[bool, bytes]:
    try:
        return True, await anext(source)
    except StopAsyncIteration:
        return False, b""


async def _values_from(values: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(values, AsyncIterable):
        async for value in values:
            yield value
    else:
        for value in values:
            yield value


def _never_connected(e: grpc.aio.AioRpcError) -> bool:
    """The channel never reached the server: nothing on the stream was sent."""
    return (
        e.code() == grpc.StatusCode.UNAVAILABLE
        and "failed to connect" in (e.details() or "").lower()
    )
