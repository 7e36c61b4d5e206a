"""The simulated network: packets in flight between Raft nodes, with delay, loss,
duplication, reordering and partitions.

It owns no clock and no randomness of its own: the caller passes the tick and the
seeded random.Random. It may not look inside messages beyond their from/to ids.
Two ways to use it: timed (send() then deliver_due(tick)) for the simulator, and
manual (in_flight/take/drop/duplicate) for the hypothesis state machine.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from logmesh_storage.raft.messages import Message
from logmesh_storage.raft.types import NodeId


@dataclass(frozen=True)
class NetworkOptions:
    """Fault rates of one run. Reordering comes from random delays within
    [delay_ticks_min, delay_ticks_max] and from shuffling packets due on the same tick."""

    delay_ticks_min: int = 0
    delay_ticks_max: int = 2
    loss_probability: float = 0.0
    duplicate_probability: float = 0.0

    def __post_init__(self) -> None:
        assert 0 <= self.delay_ticks_min <= self.delay_ticks_max
        assert 0.0 <= self.loss_probability < 1.0
        assert 0.0 <= self.duplicate_probability < 1.0


@dataclass(order=True)
class _Packet:
    deliver_tick: int
    sequence: int  # tie-break that keeps heap order deterministic
    message: Message = field(compare=False)


class Network:
    def __init__(self, rng: random.Random, options: NetworkOptions = NetworkOptions()) -> None:
        self._rng = rng
        self.options = options
        self._queue: list[_Packet] = []
        self._sequence = 0
        # node -> partition group; nodes not listed are in group 0, so an empty map is healed
        self._group_by_node: dict[NodeId, int] = {}
        self.packets_sent = 0
        self.packets_lost = 0

    # partitions

    def partition(self, groups: Sequence[Collection[NodeId]]) -> None:
        """Split the nodes: only nodes of the same group can talk. Unlisted nodes form
        one more group together."""
        self._group_by_node = {
            node: number + 1 for number, group in enumerate(groups) for node in group
        }

    def heal(self) -> None:
        self._group_by_node = {}

    def is_partitioned(self) -> bool:
        return bool(self._group_by_node)

    def connected(self, a: NodeId, b: NodeId) -> bool:
        return self._group_by_node.get(a, 0) == self._group_by_node.get(b, 0)

    # timed use

    def send(self, message: Message, now_tick: int) -> None:
        """Queue a message; it may be lost, duplicated, and arrives after a random delay."""
        self.packets_sent += 1
        if self._rng.random() < self.options.loss_probability:
            self.packets_lost += 1
            return
        copies = 2 if self._rng.random() < self.options.duplicate_probability else 1
        for _ in range(copies):
            delay_ticks = self._rng.randint(
                self.options.delay_ticks_min, self.options.delay_ticks_max
            )
            self._push(message, now_tick + delay_ticks)

    def deliver_due(self, now_tick: int) -> list[Message]:
        """The packets due by now_tick, shuffled, minus those a partition cuts at
        arrival (a partition that starts while a packet is in flight drops it)."""
        due: list[Message] = []
        while self._queue and self._queue[0].deliver_tick <= now_tick:
            due.append(heapq.heappop(self._queue).message)
        self._rng.shuffle(due)
        return [m for m in due if self.connected(m.from_id, m.to_id)]

    # manual use (the hypothesis state machine picks what happens to each packet)

    @property
    def in_flight(self) -> list[Message]:
        return [packet.message for packet in sorted(self._queue)]

    def take(self, position: int) -> Message | None:
        """Remove the position-th packet (modulo the count) and return it, or None if
        the network is empty or a partition cuts it."""
        packet = self._pop(position)
        if packet is None or not self.connected(packet.message.from_id, packet.message.to_id):
            return None
        return packet.message

    def drop(self, position: int) -> None:
        self._pop(position)

    def duplicate(self, position: int) -> None:
        if self._queue:
            packets = sorted(self._queue)
            self._push(packets[position % len(packets)].message, 0)

    def clear(self) -> None:
        self._queue = []

    def _push(self, message: Message, deliver_tick: int) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, _Packet(deliver_tick, self._sequence, message))

    def _pop(self, position: int) -> _Packet | None:
        if not self._queue:
            return None
        packets = sorted(self._queue)
        chosen = packets.pop(position % len(packets))
        self._queue = packets  # a sorted list is a valid heap
        return chosen
