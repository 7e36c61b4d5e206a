"""The `log.v1.Log` API of a storage node (DESIGN §2).

Writes go through the driver (acknowledged once a majority has them on disk and this node has
applied them); reads serve committed records only, on every node, from reader threads so the
event loop never waits for the disk. Errors leave as logmesh errors with ErrorInfo; nothing
else (no traceback) reaches a client. It may not touch the Raft core directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from operator import attrgetter
from typing import Any, TypeVar

import grpc.aio

from logmesh._gen.log.v1 import log_pb2 as pb
from logmesh._gen.log.v1 import log_pb2_grpc
from logmesh.errors import (
    InvalidArgumentError,
    LogmeshError,
    OffsetOutOfRangeError,
    OffsetTruncatedError,
    UnavailableError,
    abort,
)

from ..log.entry import Entry, RecordBlock
from ..log.errors import OffsetOutOfRange, OffsetTruncated
from ..raft.status import Status
from ..raft.types import Role
from .authz import require_any_client
from .driver import Driver

Context = grpc.aio.ServicerContext[Any, Any]
_R = TypeVar("_R")
_Q = TypeVar("_Q", pb.ProduceRequest, pb.ProduceBatchRequest)

# Records read from the log per read while following the tail (one thread hop each).
READ_RECORDS_MAX = 512
# ProduceStream / ProduceBatchStream: requests proposed and not yet answered, per stream
# (backpressure).
STREAM_INFLIGHT_MAX = 1024
BATCH_RECORDS_MAX = 10_000
# A batch is one Raft entry (RECORDS), shipped whole in one AppendEntries: this keeps it far
# below tls.MESSAGE_BYTES_MAX.
BATCH_BYTES_MAX = 16 << 20


class LogServicer(log_pb2_grpc.LogServicer):
    def __init__(self, driver: Driver, advertise: str, record_bytes_max: int) -> None:
        self._driver = driver
        self._advertise = advertise
        self._record_bytes_max = record_bytes_max

    # ---- writes --------------------------------------------------------------------------

    async def Produce(self, request: pb.ProduceRequest, context: Context) -> pb.ProduceResponse:  # noqa: N802
        await require_any_client(context)
        try:
            offset = await self._driver.propose([self._value(request.record)])
        except LogmeshError as e:
            await abort(context, e)
        return pb.ProduceResponse(offset=offset)

    async def ProduceBatch(  # noqa: N802
        self, request: pb.ProduceBatchRequest, context: Context
    ) -> pb.ProduceBatchResponse:
        await require_any_client(context)
        try:
            values = self._batch_values(request)
            first = await self._driver.propose(values)
        except LogmeshError as e:
            await abort(context, e)
        return pb.ProduceBatchResponse(first_offset=first, count=len(values))

    async def ProduceStream(  # noqa: N802
        self, request_iterator: AsyncIterator[pb.ProduceRequest], context: Context
    ) -> AsyncIterator[pb.ProduceResponse]:
        await require_any_client(context)
        async for offset, _ in self._pipeline(request_iterator, self._record_values, context):
            yield pb.ProduceResponse(offset=offset)

    async def ProduceBatchStream(  # noqa: N802
        self, request_iterator: AsyncIterator[pb.ProduceBatchRequest], context: Context
    ) -> AsyncIterator[pb.ProduceBatchResponse]:
        await require_any_client(context)
        async for first, count in self._pipeline(request_iterator, self._batch_values, context):
            yield pb.ProduceBatchResponse(first_offset=first, count=count)

    async def _pipeline(
        self,
        requests: AsyncIterator[_Q],
        values_of: Callable[[_Q], list[bytes]],
        context: Context,
    ) -> AsyncIterator[tuple[int, int]]:
        """(first offset, count) for each request, in order; each is proposed as it arrives
        (so requests in flight share fsyncs). Ends after the last answer when the client
        half-closes; the first error ends the stream with that error."""
        pending: asyncio.Queue[tuple[asyncio.Future[int], int] | None] = asyncio.Queue(
            STREAM_INFLIGHT_MAX
        )
        reader = asyncio.get_running_loop().create_task(
            self._propose_each(requests, values_of, pending)
        )
        try:
            while (item := await pending.get()) is not None:
                future, count = item
                try:
                    first = await future
                except LogmeshError as e:
                    await abort(context, e)
                yield first, count
            await reader  # re-raises a failure of the request stream itself
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await reader

    async def _propose_each(
        self,
        requests: AsyncIterator[_Q],
        values_of: Callable[[_Q], list[bytes]],
        pending: asyncio.Queue[tuple[asyncio.Future[int], int] | None],
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for request in requests:
                future: asyncio.Future[int]
                count = 0
                try:
                    values = values_of(request)
                    count = len(values)
                    future = self._driver.propose_nowait(values)
                    # If the stream ends before this answer is sent (an earlier failure, a
                    # cancel), nobody awaits it: its outcome is the client's to find out.
                    future.add_done_callback(_retrieve)
                except LogmeshError as e:
                    # The stream ends with this error once the requests before it are
                    # answered: propose nothing after it (the client knows exactly what
                    # was appended: everything answered, nothing after the failed request).
                    future = loop.create_future()
                    future.set_exception(e)
                    future.add_done_callback(_retrieve)  # as above: the stream may end first
                    await pending.put((future, count))
                    return
                await pending.put((future, count))
        except Exception:
            await pending.put(None)  # the answering loop stops, then re-raises this via `reader`
            raise
        await pending.put(None)  # the client half-closed: answer the rest, then end with OK

    def _record_values(self, request: pb.ProduceRequest) -> list[bytes]:
        return [self._value(request.record)]

    def _batch_values(self, request: pb.ProduceBatchRequest) -> list[bytes]:
        if not request.records or len(request.records) > BATCH_RECORDS_MAX:
            raise InvalidArgumentError(
                f"a batch holds 1 to {BATCH_RECORDS_MAX} records, this one "
                f"{len(request.records)}: split it",
                "records",
            )
        values = self._values(request.records)
        if (size := sum(map(len, values))) > BATCH_BYTES_MAX:
            raise InvalidArgumentError(
                f"a batch holds at most {BATCH_BYTES_MAX} bytes of values, this one "
                f"{size}: split it",
                "records",
            )
        return values

    def _values(self, records: Sequence[pb.Record]) -> list[bytes]:
        """The values of a batch, checked with loops in C: this runs for every record."""
        values = list(map(_record_value, records))
        if max(map(len, values)) > self._record_bytes_max:
            for record in records:
                self._value(record)  # raises for the first one too large
        return values

    def _value(self, record: pb.Record) -> bytes:
        if len(record.value) > self._record_bytes_max:
            raise InvalidArgumentError(
                f"the record value has {len(record.value)} bytes, more than the limit of "
                f"{self._record_bytes_max}: split it or raise --record-bytes-max",
                "record.value",
            )
        return record.value

    # ---- reads ---------------------------------------------------------------------------

    async def Consume(self, request: pb.ConsumeRequest, context: Context) -> pb.ConsumeResponse:  # noqa: N802
        await require_any_client(context)
        try:
            records = await self._read(request.offset, 1)
            if not records:
                raise OffsetOutOfRangeError(request.offset, self._driver.committed_next_offset)
        except LogmeshError as e:
            await abort(context, e)
        return pb.ConsumeResponse(record=_record(records[0]))

    async def ConsumeStream(  # noqa: N802
        self, request: pb.ConsumeRequest, context: Context
    ) -> AsyncIterator[pb.ConsumeResponse]:
        await require_any_client(context)
        offset, batch = request.offset, request.max_batch_records
        driver = self._driver
        try:
            while not driver.stopped:
                change = driver.applied.next_change()  # taken before the check: see notify.py
                if offset >= driver.committed_next_offset:
                    await change.wait()
                    continue
                block = await self._read_block(offset, max(batch, READ_RECORDS_MAX))
                for response in _responses(block, batch):
                    yield response
                offset = block.next_offset
            raise UnavailableError(
                f"the node is shutting down: resume from offset {offset} on another node"
            )
        except LogmeshError as e:
            await abort(context, e)

    async def _read(self, offset: int, max_records: int) -> list[Entry]:
        """Committed records from `offset`; empty if there is none yet."""
        if offset >= self._driver.committed_next_offset:
            return []
        return await self._in_reader(self._driver.storage.read_records, offset, max_records)

    async def _read_block(self, offset: int, max_records: int) -> RecordBlock:
        """Committed records from `offset` as columns; called only below the committed end."""
        return await self._in_reader(self._driver.storage.read_record_block, offset, max_records)

    async def _in_reader(self, read: Callable[[int, int, int], _R], offset: int, count: int) -> _R:
        """`read(offset, count, applied index)` in a reader thread, errors as logmesh's."""
        driver = self._driver
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, read, offset, count, driver.applied_index)
        except OffsetTruncated as e:
            raise OffsetTruncatedError(offset, e.first_offset) from None
        except OffsetOutOfRange:
            raise OffsetOutOfRangeError(offset, driver.committed_next_offset) from None

    # ---- cluster -------------------------------------------------------------------------

    async def GetServers(  # noqa: N802
        self, request: pb.GetServersRequest, context: Context
    ) -> pb.GetServersResponse:
        await require_any_client(context)
        status = self._driver.status()
        configuration = status.configuration
        servers = []
        for node_id in sorted(configuration.members):
            if node_id in configuration.learners:
                role = "learner"
            elif node_id == status.leader_id:
                role = "leader"
            elif node_id == status.node_id:
                role = status.role.value
            else:
                role = "follower"
            address = (
                self._advertise
                if node_id == status.node_id
                else self._driver.peers.address(node_id) or ""
            )
            servers.append(
                pb.Server(
                    id=node_id,
                    rpc_addr=address,
                    role=role,
                    is_leader=role == "leader",
                    lag=_lag(status, node_id, self._driver.applied_index),
                )
            )
        return pb.GetServersResponse(servers=servers)


def _lag(status: Status, node_id: str, applied_index: int) -> int:
    """Committed entries `node_id` lacks, as far as this node knows (see log.proto Server)."""
    if status.role is Role.LEADER:
        progress = status.progress.get(node_id)
        return 0 if progress is None else max(0, status.commit_index - progress.match_index)
    if node_id == status.node_id:
        return max(0, status.commit_index - applied_index)
    return 0  # a follower does not know the others' progress


_record_value = attrgetter("value")


def _retrieve(future: asyncio.Future[int]) -> None:
    """Mark the outcome as seen, so asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


def _responses(block: RecordBlock, batch: int) -> list[pb.ConsumeResponse]:
    """The stream messages for `block`: `batch` records each in `records`, or with batch 0
    the book's contract, one record per message in `record`. Built in place with
    `records.add` (a Record and a Timestamp constructed apart and copied in cost twice as
    much: this runs for every record a consumer reads)."""
    columns = block.payloads, block.offsets, block.terms, block.timestamps_ms
    responses = []
    if not batch:
        for value, offset, term, timestamp_ms in zip(*columns, strict=True):
            response = pb.ConsumeResponse()
            _fill(response.record, value, offset, term, timestamp_ms)
            responses.append(response)
        return responses
    for i in range(0, len(block), batch):
        response = pb.ConsumeResponse()
        add = response.records.add
        for value, offset, term, timestamp_ms in zip(
            *(column[i : i + batch] for column in columns), strict=True
        ):
            seconds, ms = divmod(timestamp_ms, 1000)
            append_time = add(value=value, offset=offset, term=term).append_time
            append_time.seconds = seconds
            append_time.nanos = ms * 1_000_000
        responses.append(response)
    return responses


def _fill(record: pb.Record, value: bytes, offset: int, term: int, timestamp_ms: int) -> None:
    record.value = value
    record.offset = offset
    record.term = term
    record.append_time.FromMilliseconds(timestamp_ms)


def _record(entry: Entry) -> pb.Record:
    record = pb.Record()
    _fill(record, entry.payload, entry.offset, entry.term, entry.timestamp_ms)
    return record
