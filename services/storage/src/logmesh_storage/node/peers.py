"""The peer table: where each node of the cluster listens.

Raft's configuration names nodes by id only, but a node must know addresses to send votes and
entries, to hint NOT_LEADER callers at the leader and to answer GetServers. Addresses spread
with the Raft traffic itself: every batch header carries the sender's table, and a node keeps,
per id, the entry with the highest generation (a node's generation grows on every start, so a
restarted node's new address replaces stale copies). The table is saved to `peers.json` so a
whole-cluster restart still knows where everyone is. No I/O except load/save.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .atomicfile import read_json, write_json
from .errors import NodeStateError

FILE_NAME = "peers.json"


@dataclass(frozen=True, slots=True)
class PeerAddress:
    id: str
    address: str
    generation: int


def new_generation() -> int:
    """A generation above any earlier start of this node: wall-clock nanoseconds.

    A clock stepping back by more than a restart's length could let a stale address win until
    the node's next message; that only delays reconnection, it never affects Raft safety.
    """
    return time.time_ns()


class PeerTable:
    def __init__(self, path: Path, entries: Iterable[PeerAddress] = ()) -> None:
        self.path = path
        self._by_id: dict[str, PeerAddress] = {}
        self.version = 0  # grows on every change, so readers can cache what they derive
        self.merge(entries)

    @classmethod
    def load(cls, data_dir: Path) -> PeerTable:
        path = data_dir / FILE_NAME
        raw = read_json(path)
        if raw is None:
            return cls(path)
        try:
            entries = [
                PeerAddress(str(p["id"]), str(p["address"]), int(p["generation"]))
                for p in raw["peers"]
            ]
        except (KeyError, TypeError, ValueError) as e:
            raise NodeStateError(
                f"{path} is malformed ({e!r}): delete it; peers re-announce "
                "their addresses with their next message"
            ) from e
        return cls(path, entries)

    def save(self, entries: list[PeerAddress]) -> None:
        """Write `entries` (a snapshot() taken on the loop) durably. Blocking: call it off the
        event loop, which keeps changing the table meanwhile."""
        write_json(
            self.path,
            {
                "peers": [
                    {"id": p.id, "address": p.address, "generation": p.generation} for p in entries
                ]
            },
        )

    def merge(self, entries: Iterable[PeerAddress]) -> bool:
        """Keep the newest generation per id; True if anything changed."""
        changed = False
        for entry in entries:
            known = self._by_id.get(entry.id)
            if known is None or entry.generation > known.generation:
                self._by_id[entry.id] = entry
                changed = True
                self.version += 1
        return changed

    def address(self, node_id: str) -> str | None:
        entry = self._by_id.get(node_id)
        return None if entry is None else entry.address

    def snapshot(self) -> list[PeerAddress]:
        return sorted(self._by_id.values(), key=lambda p: p.id)
