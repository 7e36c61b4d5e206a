"""The server side of the Raft transport: `logmesh.v1.Raft/Messages` (see raft.proto).

Each inbound stream belongs to one peer; every batch is checked (cluster, protocol version,
receiver, and that the TLS identity is the sender it claims to be) before its messages reach
the core, so a misconfigured or foreign node is refused with PEER_REFUSED instead of disturbing
the cluster. Only storage identities may call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc.aio

from logmesh._gen.logmesh.v1 import raft_pb2 as pb
from logmesh._gen.logmesh.v1 import raft_pb2_grpc
from logmesh.errors import abort

from .authz import require_storage
from .codec import check_header, decode_message, decode_peers
from .driver import Driver
from .errors import PeerRefusedError, PeerRefusedWireError

log = logging.getLogger(__name__)


class RaftServicer(raft_pb2_grpc.RaftServicer):
    def __init__(self, driver: Driver, cluster_id: str) -> None:
        self._driver = driver
        self._cluster_id = cluster_id

    async def Messages(  # noqa: N802
        self,
        request_iterator: AsyncIterator[pb.RaftBatch],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.MessagesAck:
        caller = await require_storage(context, "Raft")
        # The peer never half-closes its stream; when this node stops, end the call here
        # (OK) instead of leaving it to the server's grace period and a cancellation.
        receiving = asyncio.ensure_future(self._receive(request_iterator, caller))
        stopped = asyncio.ensure_future(self._driver.stopped_event.wait())
        try:
            await asyncio.wait([receiving, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving
        if receiving.done() and not receiving.cancelled():
            refused = receiving.result()
            if refused is not None:
                log.warning("refused raft stream from %s: %s", caller, refused)
                await abort(context, PeerRefusedWireError(str(refused)))
        return pb.MessagesAck()

    async def _receive(
        self, request_iterator: AsyncIterator[pb.RaftBatch], caller: str
    ) -> PeerRefusedError | None:
        """Step every batch of the stream; the refusal that ended it, if any."""
        driver = self._driver
        try:
            async for batch in request_iterator:
                header = batch.header
                check_header(header, self._cluster_id, driver.node_id, caller)
                if driver.peers.merge(decode_peers(header)):
                    driver.peers_changed()
                frames = driver.storage.frames
                messages = [decode_message(m, frames) for m in batch.messages]
                for message in messages:
                    if message.from_id != header.from_id or message.to_id != driver.node_id:
                        raise PeerRefusedError(
                            f"{header.from_id} sent a message from {message.from_id} to "
                            f"{message.to_id} on its stream to {driver.node_id}: a bug in the "
                            "sender; upgrade it"
                        )
                driver.step(messages)
        except PeerRefusedError as e:
            return e
        return None
