"""The client side of the Raft transport: one channel and one long-lived stream per peer.

`send` never blocks and never fails: Raft tolerates lost messages (the core retries through
heartbeats and probes), so a full queue or a broken stream drops messages instead of stalling the
driver. Each peer's stream is (re)opened to the address the peer table has now, so a peer that
restarts elsewhere is reached as soon as its new address spreads. Server side: servicers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import grpc
import grpc.aio

from logmesh import tls
from logmesh._gen.logmesh.v1 import raft_pb2 as pb
from logmesh._gen.logmesh.v1 import raft_pb2_grpc

from ..raft.messages import Message
from .codec import FrameBlocks, encode_message, make_header
from .frames import FrameCache
from .peers import PeerTable

log = logging.getLogger(__name__)

# A peer that cannot keep up loses messages beyond this; Raft resends what matters.
QUEUE_MESSAGES_MAX = 4096
# One stream message carries at most this many Raft messages (bounded gRPC message size).
BATCH_MESSAGES_MAX = 256
# ... and at most this many bytes: far below tls.MESSAGE_BYTES_MAX (one AppendEntries carries up
# to RaftConfig.max_bytes_per_message, 1 MiB by default, and always at least one entry).
BATCH_BYTES_MAX = 8 << 20
RECONNECT_DELAY_S_MIN = 0.05
RECONNECT_DELAY_S_MAX = 1.0


class Transport:
    def __init__(
        self,
        node_id: str,
        cluster_id: str,
        tls_dir: Path,
        peers: PeerTable,
        frames: FrameCache | None = None,
    ) -> None:
        """`frames`: where to leave the frames encoded for AppendEntries, so that this node's
        own append of the same entries writes them instead of encoding again."""
        self.node_id = node_id
        self._frame_cache = frames
        self.cluster_id = cluster_id
        self._credentials = tls.channel_credentials(tls_dir, node_id)
        self._peers = peers
        self._streams: dict[str, _PeerStream] = {}
        # Per receiver: the header and the peer table version it was built from; it goes
        # with every batch, and rebuilding it each time costs more than the batch itself.
        self._headers: dict[str, tuple[int, pb.Header]] = {}

    def send(self, messages: Iterable[Message]) -> None:
        """Queue messages for their receivers; entries shared by several messages (the same
        AppendEntries content to each follower) are encoded once."""
        blocks: FrameBlocks = {}
        for msg in messages:
            assert msg.from_id == self.node_id, msg
            assert msg.to_id != self.node_id, f"the core addressed a message to itself: {msg}"
            stream = self._streams.get(msg.to_id)
            if stream is None:
                stream = _PeerStream(self, msg.to_id)
                self._streams[msg.to_id] = stream
            stream.put(encode_message(msg, blocks))
        if self._frame_cache is not None:
            for entries, batch in blocks.values():
                self._frame_cache.put_batch(entries, batch)

    async def close(self) -> None:
        streams, self._streams = list(self._streams.values()), {}
        await asyncio.gather(*(s.close() for s in streams))

    def header(self, to_id: str) -> pb.Header:
        """Not to be modified: shared by the batches to `to_id` until the peer table changes."""
        version = self._peers.version
        cached = self._headers.get(to_id)
        if cached is None or cached[0] != version:
            header = make_header(self.cluster_id, self.node_id, to_id, self._peers.snapshot())
            cached = self._headers[to_id] = (version, header)
        return cached[1]

    def address(self, node_id: str) -> str | None:
        return self._peers.address(node_id)

    def credentials(self) -> grpc.ChannelCredentials:
        return self._credentials


class _PeerStream:
    """The queue and the sending task for one peer."""

    def __init__(self, transport: Transport, peer_id: str) -> None:
        self._transport = transport
        self.peer_id = peer_id
        self._queue: deque[pb.RaftMessage] = deque()
        self._queued = asyncio.Event()
        self._closed = False
        self._failing = False  # the last attempt failed and was logged
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"raft->{peer_id}")

    def put(self, msg: pb.RaftMessage) -> None:
        if len(self._queue) >= QUEUE_MESSAGES_MAX:
            return  # see module docstring: dropping is safe, blocking is not
        self._queue.append(msg)
        self._queued.set()

    async def close(self) -> None:
        self._closed = True
        self._queued.set()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        delay_s = RECONNECT_DELAY_S_MIN
        while not self._closed:
            address = self._transport.address(self.peer_id)
            if address is None:
                # Nobody told us where the peer is yet; its first message or the leader's
                # table will. Drop what we have: it is stale by then.
                self._queue.clear()
                await self._wait_queued()
                continue
            sent = await self._stream_to(address)
            if sent:
                delay_s = RECONNECT_DELAY_S_MIN
                self._failing = False
            else:
                self._queue.clear()
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, RECONNECT_DELAY_S_MAX)

    async def _stream_to(self, address: str) -> bool:
        """Stream batches until the address changes or the stream fails; True if it worked."""
        options = tls.channel_options()
        async with grpc.aio.secure_channel(
            address, self._transport.credentials(), options=options
        ) as channel:
            stub = raft_pb2_grpc.RaftStub(channel)
            try:
                await stub.Messages(self._batches(address))
                return True
            except grpc.aio.AioRpcError as e:
                if self._failing:
                    return False  # said once already; quiet until it works again
                self._failing = True
                log.info(
                    "raft stream to %s at %s ended: %s %s",
                    self.peer_id,
                    address,
                    e.code().name,
                    e.details(),
                )
                return False

    async def _batches(self, address: str) -> AsyncIterator[pb.RaftBatch]:
        while not self._closed:
            if not self._queue:
                await self._wait_queued()
                continue
            if self._transport.address(self.peer_id) != address:
                return  # reconnect to the new address
            yield pb.RaftBatch(
                header=self._transport.header(self.peer_id), messages=self._take_batch()
            )

    def _take_batch(self) -> list[pb.RaftMessage]:
        """The oldest queued messages, at least one, within the batch limits."""
        messages = [self._queue.popleft()]
        size = messages[0].ByteSize()
        while self._queue and len(messages) < BATCH_MESSAGES_MAX:
            size += self._queue[0].ByteSize()
            if size > BATCH_BYTES_MAX:
                break
            messages.append(self._queue.popleft())
        return messages

    async def _wait_queued(self) -> None:
        self._queued.clear()
        if not self._queue and not self._closed:
            await self._queued.wait()
