"""A tiny in-test network for Raft unit tests: RaftNodes over MemoryStorage, messages
delivered in FIFO order on demand, with partitions, message filters and crashes.

Deterministic: no threads, no clock, each node's rng seeded. The driver loop here is
the reference for the ordering rules of Ready (docs/raft.md): send `messages`,
persist, send `messages_after_persist`, apply, advance.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.raft import (
    Configuration,
    HardState,
    MemoryStorage,
    Message,
    RaftConfig,
    RaftNode,
    ReadState,
    Role,
    SnapshotMeta,
)

FAST = RaftConfig(election_timeout_ticks=10, heartbeat_interval_ticks=1)


def storage_with(
    voters: str, terms: Sequence[int], term: int, commit_index: int = 0
) -> MemoryStorage:
    """A storage whose log holds one DATA entry per element of `terms` (its term)."""
    entries = [
        Entry(i + 1, t, EntryType.DATA, i, 0, f"{i}@{t}".encode()) for i, t in enumerate(terms)
    ]
    bootstrap = SnapshotMeta(0, 0, Configuration(frozenset(voters)), 0)
    return MemoryStorage(bootstrap, HardState(term, None, commit_index), entries)


class Net:
    def __init__(
        self,
        voters: Sequence[str],
        learners: Sequence[str] = (),
        config: RaftConfig = FAST,
        seed: int = 1,
        empty: Sequence[str] = (),
        storages: Mapping[str, MemoryStorage] | None = None,
    ) -> None:
        """`voters`/`learners` bootstrap with that configuration; `empty` nodes start
        knowing no configuration (they wait to be contacted); `storages` overrides the
        starting storage of some nodes."""
        self.config = config
        self.seed = seed
        bootstrap = SnapshotMeta(0, 0, Configuration(frozenset(voters), frozenset(learners)), 0)
        self.storages: dict[str, MemoryStorage] = {}
        for node_id in [*voters, *learners]:
            self.storages[node_id] = MemoryStorage(bootstrap)
        for node_id in empty:
            self.storages[node_id] = MemoryStorage()
        self.storages.update(storages or {})
        self.nodes: dict[str, RaftNode] = {}
        self.applied: dict[str, list[Entry]] = {n: [] for n in self.storages}
        self.read_states: dict[str, list[ReadState]] = {n: [] for n in self.storages}
        self.snapshots_installed: dict[str, list[SnapshotMeta]] = {n: [] for n in self.storages}
        for node_id in self.storages:
            self._start(node_id)
        self.queue: deque[Message] = deque()
        self.cut: set[tuple[str, str]] = set()
        self.drop: Callable[[Message], bool] = lambda m: False
        self.sent: list[Message] = []

    def _start(self, node_id: str) -> None:
        rng = random.Random(f"{self.seed}-{node_id}")
        self.nodes[node_id] = RaftNode(node_id, self.storages[node_id], self.config, rng)

    # the driver

    def process(self, node_id: str) -> None:
        """Run node_id's Ready loop once, in the order Ready prescribes."""
        node = self.nodes[node_id]
        while node.has_ready():
            ready = node.ready()
            self._send(ready.messages)
            self.storages[node_id].save(ready.hard_state, ready.entries, ready.snapshot)
            if ready.snapshot is not None:
                self.snapshots_installed[node_id].append(ready.snapshot)
            self._send(ready.messages_after_persist)
            self.applied[node_id].extend(ready.committed_entries)
            self.read_states[node_id].extend(ready.read_states)
            node.advance(ready)

    def _send(self, messages: Iterable[Message]) -> None:
        for message in messages:
            self.sent.append(message)
            if (message.from_id, message.to_id) in self.cut or self.drop(message):
                continue
            self.queue.append(message)

    def settle(self, max_steps: int = 100_000) -> None:
        """Deliver until no node has anything to do."""
        for _ in range(max_steps):
            for node_id in self.nodes:
                self.process(node_id)
            if not self.queue:
                return
            message = self.queue.popleft()
            if message.to_id in self.nodes:
                self.nodes[message.to_id].step(message)
        raise AssertionError("the network did not settle")

    def tick(self, node_ids: Iterable[str] | None = None, times: int = 1) -> None:
        for _ in range(times):
            for node_id in node_ids if node_ids is not None else list(self.nodes):
                self.nodes[node_id].tick()
            self.settle()

    def elect(self, node_id: str) -> None:
        """Let node_id's election timer fire first, and settle."""
        node = self.nodes[node_id]
        for _ in range(4 * self.config.election_timeout_ticks):
            node.tick()
            if node.role is not Role.FOLLOWER:
                break
        self.settle()
        assert node.role is Role.LEADER, f"{node_id} did not win: {node.status()}"

    def leader(self) -> str:
        leaders = [n for n, node in self.nodes.items() if node.role is Role.LEADER]
        assert len(leaders) == 1, f"expected one leader, got {leaders}"
        return leaders[0]

    def propose(self, node_id: str, *payloads: bytes) -> tuple[int, int]:
        span = self.nodes[node_id].propose(list(payloads), timestamp_ms=1000)
        self.settle()
        return span

    # faults

    def isolate(self, node_id: str) -> None:
        for other in self.nodes:
            if other != node_id:
                self.cut |= {(node_id, other), (other, node_id)}

    def partition(self, *groups: Sequence[str]) -> None:
        for group in groups:
            for node_id in group:
                for other in self.nodes:
                    if other not in group:
                        self.cut |= {(node_id, other), (other, node_id)}

    def heal(self) -> None:
        self.cut.clear()
        self.drop = lambda m: False

    def crash(self, node_id: str) -> None:
        """Restart node_id from its durable state; its queued messages are lost."""
        self.queue = deque(m for m in self.queue if m.to_id != node_id)
        self.storages[node_id] = self.storages[node_id].copy()
        self._start(node_id)

    # observations

    def data(self, node_id: str) -> list[bytes]:
        return [e.payload for e in self.applied[node_id] if e.type is EntryType.DATA]

    def log(self, node_id: str) -> list[tuple[int, int]]:
        storage = self.storages[node_id]
        entries = storage.entries(storage.first_index(), storage.last_index() + 1, 1 << 30)
        return [(e.index, e.term) for e in entries]
