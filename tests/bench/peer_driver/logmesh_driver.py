"""A load driver for logmesh's `log.v1.Log` with the interface of the peer harness's drivers.

`../shared/bench/peers/loadgen.py` drives etcd, NATS and benchpeer.Log servers through objects
with `open(info, args)`, `append(value)`, `append_batch(values)`, `read_pages(page, max, deadline)`
and `close()`; this is the same for logmesh, so the harness measures logmesh with its own loops
(loadgen.py beside this file registers it), and `tests/bench/bench_cluster.py` uses it too. It
adds `stream_window` (pipelined ProduceStream), which the harness has no shape for.

Runs in two environments: the project's venv (stubs from `logmesh._gen`) and the harness's venv,
where run_peer_compare.sh generates the stubs into the harness's `gen/` folder. So this module
may import nothing from logmesh but the generated stubs, and nothing outside grpc and the
standard library. Every call has a deadline; every loop is bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

try:  # the project's venv
    from logmesh._gen.log.v1 import log_pb2 as pb
    from logmesh._gen.logmesh.v1 import admin_pb2
except ImportError:  # the harness's venv: stubs generated into its gen/ folder
    from log.v1 import log_pb2 as pb  # type: ignore[no-redef,import-not-found]
    from logmesh.v1 import admin_pb2  # type: ignore[no-redef,import-untyped,unused-ignore]

CALL_DEADLINE_S = 30.0
# LogmeshStreamDriver: the deadline of each caller's long-lived stream (longer than any shape).
STREAM_DEADLINE_S = 3600.0
MESSAGE_BYTES_MAX = 64 * 1024 * 1024
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", MESSAGE_BYTES_MAX),
    ("grpc.max_send_message_length", MESSAGE_BYTES_MAX),
]


def channel(address: str, certs_dir: Path | str, identity: str) -> grpc.aio.Channel:
    """A mutual-TLS asyncio channel presenting certificate `identity` from `certs_dir`."""
    d = Path(certs_dir)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.pem").read_bytes(),
        private_key=(d / f"{identity}.key").read_bytes(),
        certificate_chain=(d / f"{identity}.pem").read_bytes(),
    )
    return grpc.aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS)


class LogmeshDriver:
    """Produce, ProduceBatch, ProduceStream and batched ConsumeStream on the leader."""

    name = "logmesh"
    batch_mode = "ProduceBatch of B records: one Raft entry and one fsync per batch"
    read_mode = "ConsumeStream from next_offset-N, max_batch_records=1000, on the leader"

    async def open(self, info: dict[str, Any], args: Any) -> None:
        """`info` is cluster.json (leader, certs_dir, identity); args.target overrides leader."""
        self.target: str = getattr(args, "target", None) or info["leader"]
        self._channel = channel(self.target, info["certs_dir"], info.get("identity", "root"))
        unary = self._channel.unary_unary
        self._produce = unary(
            "/log.v1.Log/Produce",
            request_serializer=pb.ProduceRequest.SerializeToString,
            response_deserializer=pb.ProduceResponse.FromString,
        )
        self._produce_batch = unary(
            "/log.v1.Log/ProduceBatch",
            request_serializer=pb.ProduceBatchRequest.SerializeToString,
            response_deserializer=pb.ProduceBatchResponse.FromString,
        )
        self._produce_batch_stream = self._channel.stream_stream(
            "/log.v1.Log/ProduceBatchStream",
            request_serializer=pb.ProduceBatchRequest.SerializeToString,
            response_deserializer=pb.ProduceBatchResponse.FromString,
        )
        self._status = unary(
            "/logmesh.v1.Admin/Status",
            request_serializer=admin_pb2.StatusRequest.SerializeToString,
            response_deserializer=admin_pb2.StatusResponse.FromString,
        )
        self._produce_stream = self._channel.stream_stream(
            "/log.v1.Log/ProduceStream",
            request_serializer=pb.ProduceRequest.SerializeToString,
            response_deserializer=pb.ProduceResponse.FromString,
        )
        self._consume_stream = self._channel.unary_stream(
            "/log.v1.Log/ConsumeStream",
            request_serializer=pb.ConsumeRequest.SerializeToString,
            response_deserializer=pb.ConsumeResponse.FromString,
        )

    async def append(self, value: bytes) -> int:
        request = pb.ProduceRequest(record=pb.Record(value=value))
        reply = await self._produce(request, timeout=CALL_DEADLINE_S)
        return int(reply.offset)

    async def append_batch(self, values: Sequence[bytes]) -> int:
        request = pb.ProduceBatchRequest()
        add = request.records.add  # in place: half the client CPU of Records built apart
        for value in values:
            add(value=value)
        reply = await self._produce_batch(request, timeout=CALL_DEADLINE_S)
        return int(reply.first_offset)

    async def next_offset(self) -> int:
        """The leader's next offset to be written (Admin.Status)."""
        reply = await self._status(admin_pb2.StatusRequest(), timeout=CALL_DEADLINE_S)
        return int(reply.next_offset)

    async def read_pages(self, page: int, max_records: int, deadline: float) -> tuple[int, int]:
        """Stream the last max_records committed records, oldest first, `page` per message.

        Returns (records, bytes); stops at the end of what was committed when it began, or at
        the deadline (time.perf_counter seconds)."""
        end = await self.next_offset()
        start = max(0, end - max_records)
        wanted = end - start
        records = nbytes = 0
        if wanted == 0:
            return 0, 0
        call = self._consume_stream(
            pb.ConsumeRequest(offset=start, max_batch_records=page),
            timeout=max(1.0, deadline - time.perf_counter()),
        )
        try:
            async for reply in call:
                for record in reply.records:
                    nbytes += len(record.value)
                records += len(reply.records)
                if records >= wanted or time.perf_counter() >= deadline:
                    break
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        finally:
            call.cancel()
        return records, nbytes

    async def stream_window(
        self, value: bytes, window: int, deadline: float, measure_from: float
    ) -> tuple[int, list[float]]:
        """Pipeline Produce requests on one ProduceStream, `window` unanswered at most, until
        `deadline` (perf_counter s). Returns (answers after measure_from, their latencies s)."""
        slots = asyncio.Semaphore(window)
        sent_at: asyncio.Queue[float] = asyncio.Queue()
        call = self._produce_stream(timeout=deadline - time.perf_counter() + CALL_DEADLINE_S)
        latencies: list[float] = []

        async def requests() -> AsyncIterator[Any]:
            request = pb.ProduceRequest(record=pb.Record(value=value))
            while time.perf_counter() < deadline:
                await slots.acquire()
                sent_at.put_nowait(time.perf_counter())
                yield request

        async def write_all() -> None:
            async for request in requests():
                await call.write(request)
            await call.done_writing()

        writer = asyncio.create_task(write_all())
        answered = 0
        try:
            while True:
                reply = await call.read()
                if reply is grpc.aio.EOF:
                    break
                t0, now = sent_at.get_nowait(), time.perf_counter()
                slots.release()
                if t0 >= measure_from:
                    answered += 1
                    latencies.append(now - t0)
        finally:
            if not writer.done():  # the read failed: stop writing too
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return answered, latencies

    async def close(self) -> None:
        await self._channel.close()


class LogmeshStreamDriver(LogmeshDriver):
    """The same shapes with each caller on its own stream instead of one unary call a write:
    a caller (an asyncio task) opens a ProduceStream (append) or a ProduceBatchStream
    (append_batch) on its first write and keeps it, one request in flight, as a producer
    holding a connection would. Same records, same acknowledgement (durable majority)."""

    name = "logmesh-stream"
    batch_mode = "ProduceBatchStream, one per caller: one Raft entry and one fsync per batch"

    async def open(self, info: dict[str, Any], args: Any) -> None:
        await super().open(info, args)
        self._lanes: dict[tuple[int, bool], Any] = {}

    def _lane(self, batch: bool) -> Any:
        task = asyncio.current_task()
        assert task is not None
        key = (id(task), batch)
        call = self._lanes.get(key)
        if call is None:
            method = self._produce_batch_stream if batch else self._produce_stream
            call = self._lanes[key] = method(timeout=STREAM_DEADLINE_S)

            def forget(_: object) -> None:
                self._lanes.pop(key, None)
                call.cancel()

            task.add_done_callback(forget)
        return call

    async def append(self, value: bytes) -> int:
        call = self._lane(batch=False)
        async with asyncio.timeout(CALL_DEADLINE_S):  # no task, unlike wait_for
            await call.write(pb.ProduceRequest(record=pb.Record(value=value)))
            reply = await call.read()
        return int(reply.offset)

    async def append_batch(self, values: Sequence[bytes]) -> int:
        request = pb.ProduceBatchRequest()
        add = request.records.add
        for value in values:
            add(value=value)
        call = self._lane(batch=True)
        async with asyncio.timeout(CALL_DEADLINE_S):
            await call.write(request)
            reply = await call.read()
        return int(reply.first_offset)

    async def close(self) -> None:
        for call in list(self._lanes.values()):
            call.cancel()
        self._lanes.clear()
        await super().close()
