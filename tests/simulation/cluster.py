"""A cluster of Raft cores, each behind a simulated driver that keeps Ready's rules:
send `messages` at once, persist to the simulated disk, only once that write is
durable send `messages_after_persist`, apply `committed_entries`, answer `read_states`,
then advance.

The cluster reports every event to the Checker. It owns no time and no policy: the
caller (the seeded Simulator, or the hypothesis state machine) says when to tick,
deliver, complete a write, crash or restart. Its only randomness is the rng it is
given, used to seed each incarnation's core.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from logmesh_storage.log.entry import EntryType
from logmesh_storage.raft.config import RaftConfig
from logmesh_storage.raft.memory import MemoryStorage
from logmesh_storage.raft.messages import Message
from logmesh_storage.raft.node import RaftNode
from logmesh_storage.raft.ready import Ready
from logmesh_storage.raft.types import Configuration, NodeId, Role

from .checkers import Checker
from .crash_checks import check_crash_kept, durable_state
from .disk import Disk, SimDisk, needs_persist
from .errors import InvariantViolationError
from .network import Network


@dataclass
class SimNode:
    node_id: NodeId
    disk: Disk
    raft: RaftNode | None = None  # None while down
    life: int = 0  # incarnation number: bumped at every start
    applied_index: int = 0  # the volatile state machine: the last applied index
    decommissioned: bool = False  # removed from the cluster: never restarted
    leader_term_seen: int = 0  # the term in which it was last observed leading
    leader_commit_seen: int = 0  # its commit index then

    @property
    def is_up(self) -> bool:
        return self.raft is not None


class Cluster:
    def __init__(
        self,
        node_ids: Sequence[NodeId],
        voter_ids: Sequence[NodeId],
        raft_config: RaftConfig,
        rng: random.Random,
        network: Network,
        checker: Checker,
        disks: Mapping[NodeId, Disk] | None = None,
        eager_messages: bool = False,
    ) -> None:
        """`disks`: each node's disk (default: MemoryStorage disks, voters bootstrapped
        with `voter_ids`, spares empty until added). `eager_messages`: drive the cores as
        the storage node's driver does, shipping the messages that need no persist
        (take_messages) at every pump, while a write is still pending."""
        self.raft_config = raft_config
        self.eager_messages = eager_messages
        self.network = network
        self.checker = checker
        self._rng = rng
        self.now_tick = 0
        self.nodes: dict[NodeId, SimNode] = {}
        for node_id in node_ids:
            disk = disks[node_id] if disks is not None else _memory_disk(node_id, voter_ids)
            self.nodes[node_id] = SimNode(node_id, disk)
        self.joined: set[NodeId] = set(voter_ids)  # ever a member of a committed configuration
        # SIGSTOP: a paused node does nothing (no tick, no write completes, no input) until
        # its tick; messages to it wait, then arrive all at once, in order, as a socket's
        # backlog does on SIGCONT.
        self.paused: dict[NodeId, int] = {}
        self._held: dict[NodeId, list[Message]] = {}

    # membership of the simulation itself

    def up_nodes(self) -> list[SimNode]:
        """The nodes running and not paused."""
        return [
            node
            for node in self.nodes.values()
            if node.raft is not None and node.node_id not in self.paused
        ]

    def raft(self, node_id: NodeId) -> RaftNode:
        core = self.nodes[node_id].raft
        assert core is not None, f"{node_id} is down"
        return core

    def leaders(self) -> list[RaftNode]:
        return [n.raft for n in self.up_nodes() if n.raft and n.raft.role is Role.LEADER]

    def start(self, node_id: NodeId) -> None:
        node = self.nodes[node_id]
        assert node.raft is None and not node.decommissioned
        storage = node.disk.storage
        node.life += 1
        node.applied_index = storage.snapshot().index  # the state machine restarts empty
        node.leader_term_seen = node.leader_commit_seen = 0
        node.raft = RaftNode(
            node_id, storage, self.raft_config, random.Random(self._rng.getrandbits(64))
        )
        self.checker.on_restart(node_id, node.raft.term, node.raft.commit_index, storage)

    def crash(self, node_id: NodeId, compacting_to: int | None = None) -> None:
        """Stop the node now: its pending write, or a compaction up to `compacting_to`
        begun just now, is cut (lost whole on a memory disk), its durable state kept;
        the checkers vet what recovery found."""
        node = self.nodes[node_id]
        node.raft = None
        self.paused.pop(node_id, None)  # a paused process can be killed; its backlog is lost
        self._held.pop(node_id, None)
        pending = node.disk.pending
        if pending is not None and compacting_to is None:
            before = durable_state(node.disk.storage, pending.ready)
        else:
            before = durable_state(node.disk.storage, None, compacting_to)
        interrupted = node.disk.crash(compacting_to)
        check_crash_kept(node_id, before, interrupted, node.disk.storage)
        if interrupted is not None:
            self.checker.on_recovered(node_id, interrupted, node.disk.storage)

    def pause(self, node_id: NodeId, until_tick: int) -> None:
        assert self.nodes[node_id].raft is not None, f"{node_id} is down"
        self.paused[node_id] = until_tick
        self._held.setdefault(node_id, [])

    def resume_due(self, now_tick: int) -> None:
        """Resume the nodes whose pause ends by now_tick: what was sent to them arrives."""
        for node_id in sorted(n for n, until in self.paused.items() if until <= now_tick):
            del self.paused[node_id]
            for message in self._held.pop(node_id):
                self.deliver(message)

    def resume_all(self) -> None:
        self.resume_due(max(self.paused.values(), default=0))

    def decommission(self, node_id: NodeId) -> None:
        self.crash(node_id)
        self.nodes[node_id].decommissioned = True

    # inputs

    def tick(self, node_id: NodeId) -> None:
        raft = self.raft(node_id)
        raft.tick()
        # The storage node's driver sends deferred commit notices on a short timer (5 ms, well
        # under a tick); here they go once per tick.
        if raft.config.defer_commit_notices and raft.commit_notices_owed():
            raft.send_commit_notices()

    def deliver(self, message: Message) -> None:
        if message.to_id in self.paused:
            self._held[message.to_id].append(message)
            return
        node = self.nodes.get(message.to_id)
        if node is not None and node.raft is not None:
            node.raft.step(message)

    # the driver

    def pump(self, node_id: NodeId, disk_delay_ticks: int) -> None:
        """If the node has a Ready and none outstanding: send its messages and start
        its write, which completes after disk_delay_ticks (0: at once). With
        eager_messages, first ship what may leave before any persist, outstanding or not."""
        node = self.nodes[node_id]
        if node.raft is None:
            return
        if self.eager_messages:
            for message in _by_receiver(node.raft.take_messages()):
                self._send(node, message)
        if node.disk.pending is not None or not node.raft.has_ready():
            return
        ready = node.raft.ready()
        for message in _by_receiver(ready.messages):
            self._send(node, message)
        delay_ticks = disk_delay_ticks if needs_persist(ready) else 0
        node.disk.begin(ready, self.now_tick + delay_ticks)
        if delay_ticks == 0:
            self.complete_write(node_id)

    def complete_write(self, node_id: NodeId) -> None:
        node = self.nodes[node_id]
        assert node.raft is not None
        ready = node.disk.complete()
        storage = node.disk.storage
        self.checker.on_persist(node_id, ready, storage)
        if node.raft.role is Role.LEADER and ready.entries:
            self.checker.on_leader_persisted(node_id, node.raft.term, ready.entries, storage)
        if ready.snapshot is not None:
            node.applied_index = max(node.applied_index, ready.snapshot.index)
        for message in _by_receiver(ready.messages_after_persist):
            self._send(node, message)
        self._apply(node, ready)
        node.raft.advance(ready)
        self._decommission_removed()

    def _send(self, node: SimNode, message: Message) -> None:
        self.checker.on_send(node.node_id, message, node.disk.storage)
        self.network.send(message, self.now_tick)

    def _apply(self, node: SimNode, ready: Ready) -> None:
        assert node.raft is not None
        for entry in ready.committed_entries:
            if entry.index != node.applied_index + 1:
                raise InvariantViolationError(
                    "state-machine safety",
                    f"{node.node_id} was handed entry {entry.index} to apply "
                    f"after applying {node.applied_index}",
                )
            node.applied_index = entry.index
            self.checker.on_apply(node.node_id, node.life, entry, node.raft.term)
            if entry.type is EntryType.CONFIG:
                self._note_configuration_committed()
        for read_state in ready.read_states:
            self.checker.on_read_state(node.node_id, read_state)

    def _note_configuration_committed(self) -> None:
        configuration = self.checker.committed_configuration
        assert configuration is not None
        self.joined |= configuration.members

    def _decommission_removed(self) -> None:
        """A removed node is shut down by its operator once its removal commits."""
        configuration = self.checker.committed_configuration
        if configuration is None:
            return
        for node_id in sorted(self.joined - configuration.members):
            if not self.nodes[node_id].decommissioned:
                self.decommission(node_id)

    # observation

    def observe(self) -> None:
        """Report every live node's volatile state; check a leader's new commits."""
        storages = {node_id: node.disk.storage for node_id, node in self.nodes.items()}
        for node in self.up_nodes():
            core = node.raft
            assert core is not None
            self.checker.observe(node.node_id, node.life, core.term, core.role, core.commit_index)
            if core.role is not Role.LEADER:
                continue
            if node.leader_term_seen != core.term:
                # a new leader's commit index was advanced (and checked) by its predecessor
                node.leader_term_seen, node.leader_commit_seen = core.term, core.commit_index
            elif core.commit_index > node.leader_commit_seen:
                node.leader_commit_seen = core.commit_index
                configurations = [core.configuration]
                if self.checker.committed_configuration is not None:
                    configurations.append(self.checker.committed_configuration)
                self.checker.on_commit_advanced(
                    node.node_id, core.term, core.commit_index, configurations, storages
                )

    def members(self) -> Configuration:
        """The configuration of the newest committed CONFIG entry (or the bootstrap one)."""
        committed = self.checker.committed_configuration
        return committed if committed is not None else Configuration(frozenset(self.joined))


def _memory_disk(node_id: NodeId, voter_ids: Sequence[NodeId]) -> SimDisk:
    # spares start with no configuration: they wait to be added as learners
    storage = MemoryStorage.bootstrap(voter_ids) if node_id in voter_ids else MemoryStorage()
    return SimDisk(storage)


def _by_receiver(messages: Sequence[Message]) -> list[Message]:
    """The core may order a Ready's messages by set iteration, which varies with
    PYTHONHASHSEED; a stable sort by receiver keeps each peer's order and makes the
    run replayable in any process."""
    return sorted(messages, key=lambda message: message.to_id)
