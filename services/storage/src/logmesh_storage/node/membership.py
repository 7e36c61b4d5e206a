"""Joining a cluster and promoting learners (DESIGN §4: explicit membership).

A node started with `--join` that is not a voter asks the leader, found through the seed
addresses and NOT_LEADER hints, to add it as a learner (or to refresh its address); it retries
until the leader answers or the node stops. The leader promotes a learner to voter once its log
has caught up, one change at a time. A failed health check never removes anyone: only Leave
does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import grpc
import grpc.aio

from logmesh import tls
from logmesh._gen.logmesh.v1 import admin_pb2, admin_pb2_grpc
from logmesh.errors import NotLeaderError, from_rpc_error

from ..raft.errors import RaftError
from ..raft.types import ConfChange, ConfChangeType
from .driver import Driver

log = logging.getLogger(__name__)

# A learner this close to the leader's commit index is caught up: promoting it then cannot
# stall commits while it copies the rest.
LEARNER_LAG_ENTRIES_MAX = 64
JOIN_DEADLINE_S = 10.0
JOIN_RETRY_DELAY_S_MIN = 0.1
JOIN_RETRY_DELAY_S_MAX = 2.0


def promote_caught_up_learners(driver: Driver) -> None:
    """Tick hook: on the leader, propose promoting one caught-up learner."""
    if not driver.is_leader() or not driver.accepting_writes:
        return
    status = driver.status()
    # The learner must at least hold the configuration entry that added it; then it is caught
    # up when within LEARNER_LAG_ENTRIES_MAX of the commit index.
    added_index = driver.raft.log.configuration_index
    for learner in sorted(status.configuration.learners):
        progress = status.progress.get(learner)
        if progress is None or progress.match_index < added_index:
            continue
        if progress.match_index + LEARNER_LAG_ENTRIES_MAX < status.commit_index:
            continue
        try:
            driver.propose_conf_change_now(ConfChange(ConfChangeType.PROMOTE, learner))
        except RaftError:
            return  # another change is pending, or leadership moved: try on a later tick
        log.info(
            "promoting learner %s (match %d, commit %d)",
            learner,
            progress.match_index,
            status.commit_index,
            extra={"event": "promote", "peer": learner},
        )
        return


async def join_cluster(
    driver: Driver,
    seeds: Sequence[str],
    advertise: str,
    generation: int,
    credentials: grpc.ChannelCredentials,
) -> None:
    """Ask the leader, through `seeds`, to add this node (or, if it is a member already, to
    note its address) until one Join succeeds. A learner needs this after a restart on a new
    address: unlike a voter, it never campaigns, so nothing else would tell the leader."""
    delay_s = JOIN_RETRY_DELAY_S_MIN
    attempt = 0
    hint: str | None = None
    while not driver.stopped:
        address = hint or seeds[attempt % len(seeds)]
        try:
            reply = await _ask_join(address, driver.node_id, advertise, generation, credentials)
            log.info(
                "joined through %s (leader %s, index %d)",
                address,
                reply.leader_id,
                reply.index,
                extra={"event": "joined"},
            )
            return
        except grpc.aio.AioRpcError as e:
            err = from_rpc_error(e)
            log.info("join through %s failed: %s", address, err.message)
            followed, hint = hint, None
            if isinstance(err, NotLeaderError) and err.leader_addr and not followed:
                hint = err.leader_addr  # follow the hint at once, but only one hop
                continue
        attempt += 1
        await asyncio.sleep(delay_s)
        delay_s = min(delay_s * 2, JOIN_RETRY_DELAY_S_MAX)


async def _ask_join(
    address: str,
    node_id: str,
    advertise: str,
    generation: int,
    credentials: grpc.ChannelCredentials,
) -> admin_pb2.JoinResponse:
    async with grpc.aio.secure_channel(
        address, credentials, options=tls.channel_options()
    ) as channel:
        stub = admin_pb2_grpc.AdminStub(channel)
        request = admin_pb2.JoinRequest(id=node_id, address=advertise, generation=generation)
        reply: admin_pb2.JoinResponse = await stub.Join(request, timeout=JOIN_DEADLINE_S)
        return reply
