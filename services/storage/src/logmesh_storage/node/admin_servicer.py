"""The `logmesh.v1.Admin` API of a storage node: Join, Leave, TransferLeadership, Status.

Membership changes are leader-only (others answer NOT_LEADER with the leader's address, so the
caller can follow), one at a time (a second one while the first is uncommitted is UNAVAILABLE,
retriable). Storage identities and operators may call it.
"""

from __future__ import annotations

from typing import Any

import grpc.aio

from logmesh._gen.logmesh.v1 import admin_pb2 as pb
from logmesh._gen.logmesh.v1 import admin_pb2_grpc
from logmesh.errors import InvalidArgumentError, LogmeshError, UnavailableError, abort

from ..raft.errors import ConfChangeInProgress, InvalidConfChange, InvalidTransfer, NotLeader
from ..raft.types import ConfChange, ConfChangeType, Role
from .authz import is_storage, require_admin
from .driver import Driver
from .peers import PeerAddress

Context = grpc.aio.ServicerContext[Any, Any]


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, driver: Driver, advertise: str, transfer_timeout_s: float) -> None:
        self._driver = driver
        self._advertise = advertise
        self._transfer_timeout_s = transfer_timeout_s

    async def Join(self, request: pb.JoinRequest, context: Context) -> pb.JoinResponse:  # noqa: N802
        await require_admin(context, "Admin")
        driver = self._driver
        try:
            if not is_storage(request.id) or not request.address:
                raise InvalidArgumentError(
                    f"Join needs a storage node id (storage-N) and its address, got "
                    f"{request.id!r} at {request.address!r}",
                    "id",
                )
            self._require_leader()
            if driver.peers.merge([PeerAddress(request.id, request.address, request.generation)]):
                driver.peers_changed()
            if request.id in driver.status().configuration.members:
                return pb.JoinResponse(leader_id=driver.node_id, index=0)
            index = await self._change(ConfChange(ConfChangeType.ADD_LEARNER, request.id))
        except LogmeshError as e:
            await abort(context, e)
        return pb.JoinResponse(leader_id=driver.node_id, index=index)

    async def Leave(self, request: pb.LeaveRequest, context: Context) -> pb.LeaveResponse:  # noqa: N802
        await require_admin(context, "Admin")
        try:
            self._require_leader()
            if request.id not in self._driver.status().configuration.members:
                return pb.LeaveResponse(index=0)
            index = await self._change(ConfChange(ConfChangeType.REMOVE, request.id))
        except LogmeshError as e:
            await abort(context, e)
        return pb.LeaveResponse(index=index)

    async def TransferLeadership(  # noqa: N802
        self, request: pb.TransferLeadershipRequest, context: Context
    ) -> pb.TransferLeadershipResponse:
        await require_admin(context, "Admin")
        try:
            self._require_leader()
            leader = await transfer_leadership(
                self._driver, request.to_id or None, self._transfer_timeout_s
            )
        except LogmeshError as e:
            await abort(context, e)
        return pb.TransferLeadershipResponse(leader_id=leader or "")

    async def Status(self, request: pb.StatusRequest, context: Context) -> pb.StatusResponse:  # noqa: N802
        await require_admin(context, "Admin")
        return status_response(self._driver, self._advertise)

    def _require_leader(self) -> None:
        if not self._driver.is_leader():
            raise self._driver.not_leader_error(self._driver.leader_id())

    async def _change(self, change: ConfChange) -> int:
        try:
            return await self._driver.change_membership(change)
        except ConfChangeInProgress as e:
            raise UnavailableError(str(e)) from None
        except InvalidConfChange as e:
            raise InvalidArgumentError(str(e), "id") from None


async def transfer_leadership(driver: Driver, to_id: str | None, timeout_s: float) -> str | None:
    """Hand leadership to `to_id` (or the most caught-up other voter) and wait until someone
    else leads or `timeout_s` passes; returns the leader then (None if unknown)."""
    status = driver.status()
    if to_id is None:
        others = [
            (p.match_index, n)
            for n, p in status.progress.items()
            if n != driver.node_id and n in status.configuration.voters
        ]
        if not others:
            return driver.node_id  # a single voter keeps leading
        to_id = max(others)[1]
    try:
        driver.transfer_leadership(to_id)
    except InvalidTransfer as e:
        raise InvalidArgumentError(str(e), "to_id") from None
    except NotLeader as e:
        raise driver.not_leader_error(e.leader_id) from None
    await driver.wait_for(
        lambda: not driver.is_leader() and driver.leader_id() is not None, driver.state, timeout_s
    )
    return driver.leader_id()


def status_response(driver: Driver, advertise: str) -> pb.StatusResponse:
    status = driver.status()
    configuration = status.configuration
    role = status.role.value
    if driver.node_id in configuration.learners:
        role = "learner"
    peers = []
    for node_id in sorted(configuration.members):
        progress = status.progress.get(node_id)
        peers.append(
            pb.PeerStatus(
                id=node_id,
                address=advertise
                if node_id == driver.node_id
                else driver.peers.address(node_id) or "",
                role=(
                    "leader"
                    if node_id == status.leader_id
                    else "learner"
                    if node_id in configuration.learners
                    else "voter"
                ),
                match_index=0 if progress is None else progress.match_index,
                next_index=0 if progress is None else progress.next_index,
            )
        )
    leader = status.leader_id or ""
    leader_address = advertise if leader == driver.node_id else driver.peers.address(leader) or ""
    return pb.StatusResponse(
        id=driver.node_id,
        term=status.term,
        role=role if status.role is not Role.LEADER else "leader",
        leader_id=leader,
        leader_address=leader_address if leader else "",
        commit_index=status.commit_index,
        applied_index=driver.applied_index,
        first_index=driver.storage.first_index(),
        last_index=status.last_index,
        voters=sorted(configuration.voters),
        learners=sorted(configuration.learners),
        peers=peers,
        first_offset=driver.storage.first_offset(),
        next_offset=driver.committed_next_offset,
    )
