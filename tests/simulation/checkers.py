"""The safety checkers: what must hold at every step of every run, whatever the faults.

The cluster reports events (a node observed, a write made durable, a message sent,
an entry applied, a proposal acknowledged, a read answered) and the Checker compares
them with what it has recorded across the whole run, crashes included. It raises
InvariantViolationError on the first broken property; it never changes the cluster and
owns no randomness. Properties (Raft paper §5.2-5.4, plus the driver's obligations):

- election safety: at most one leader per term;
- log matching: an (index, term) names one entry, always preceded by the same term,
  and record offsets stay dense along every log;
- leader completeness: a leader holds every entry committed in an earlier term;
- state-machine safety: no two nodes apply different entries at one index;
- monotonic state: within a life term and commit never go back; the durable term and
  commit never go back, and the durable vote never changes within a term;
- durability before acknowledgement: an AppendEntriesResponse or a vote grant (or a
  leader's or candidate's message) leaves only once what it states is durable;
- commit rule (§5.4.2): a leader's commit index moves only to an entry of its own term
  that is durable on a majority;
- linearizable ReadIndex: a read's index covers every entry committed before it began;
- no acknowledged proposal lost (checked at the end: `check_acknowledged_kept`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    Message,
    RequestVote,
    RequestVoteResponse,
)
from logmesh_storage.raft.ready import Ready
from logmesh_storage.raft.storage import RaftStorage
from logmesh_storage.raft.types import Configuration, HardState, NodeId, ReadState, Role

from .errors import InvariantViolationError

_ALL_BYTES = 1 << 62


@dataclass(frozen=True)
class Proposal:
    node_id: NodeId
    life: int  # the proposer's incarnation: a crash ends the client call, so no ack
    term: int
    index: int
    payload: bytes


@dataclass
class _Committed:
    entry: Entry
    min_apply_term: int  # >= the term in which the entry was committed


def durable_term_at(storage: RaftStorage, index: int) -> int | None:
    """The durable term at index; None if the log does not reach it; 0 if compacted
    away (a compacted entry was committed on that node)."""
    snapshot = storage.snapshot()
    if index < snapshot.index:
        return 0
    if index > storage.last_index():
        return None
    return storage.term(index)


class Checker:
    def __init__(self) -> None:
        self.leader_by_term: dict[int, NodeId] = {}
        self._entry_by_coord: dict[tuple[int, int], Entry] = {}
        self._prev_term_by_coord: dict[tuple[int, int], int] = {}
        self.committed: dict[int, _Committed] = {}
        self._durable_hard_state: dict[NodeId, HardState] = {}
        self._observed: dict[NodeId, tuple[int, int, int]] = {}  # node -> (life, term, commit)
        self._completeness_checked: set[tuple[NodeId, int]] = set()
        self._proposals: dict[bytes, Proposal] = {}
        self.acknowledged: dict[int, Proposal] = {}
        self._read_floor: dict[tuple[NodeId, bytes], int] = {}
        self.committed_configuration: Configuration | None = None
        self._committed_configuration_index = 0
        self.reads_answered = 0

    # observation of volatile state, every step

    def observe(self, node_id: NodeId, life: int, term: int, role: Role, commit: int) -> None:
        if role is Role.LEADER:
            leader = self.leader_by_term.setdefault(term, node_id)
            if leader != node_id:
                raise InvariantViolationError(
                    "election safety", f"{leader} and {node_id} both led term {term}"
                )
        previous = self._observed.get(node_id)
        went_back = previous is not None and (term < previous[1] or commit < previous[2])
        if previous is not None and previous[0] == life and went_back:
            raise InvariantViolationError(
                "monotonic state",
                f"{node_id} went from term {previous[1]} commit {previous[2]} "
                f"to term {term} commit {commit} without a crash",
            )
        self._observed[node_id] = (life, term, commit)

    def on_restart(self, node_id: NodeId, term: int, commit: int, storage: RaftStorage) -> None:
        durable = storage.initial_state()[0]
        if term < durable.term or commit < min(durable.commit_index, storage.last_index()):
            raise InvariantViolationError(
                "monotonic state",
                f"{node_id} restarted at term {term} commit {commit} below its durable "
                f"term {durable.term} commit {durable.commit_index}",
            )

    def on_commit_advanced(
        self,
        leader_id: NodeId,
        leader_term: int,
        commit: int,
        configurations: Iterable[Configuration],
        storages: Mapping[NodeId, RaftStorage],
    ) -> None:
        """A leader moved its commit index to `commit` by counting replicas: §5.4.2 lets
        it count only an entry of its own term, and only copies that are durable, on a
        majority of the voters (of any configuration it may have counted with)."""
        for config in configurations:
            durable = 0
            for voter in config.voters:
                storage = storages.get(voter)
                term = None if storage is None else durable_term_at(storage, commit)
                durable += term in (0, leader_term)  # 0: compacted, so committed there
            if durable * 2 > len(config.voters):
                return
        raise InvariantViolationError(
            "commit rule",
            f"leader {leader_id} of term {leader_term} committed index {commit}, which is "
            f"not an entry of its term durable on a majority (§5.4.2, durability before ack)",
        )

    # the driver's persistence

    def on_persist(self, node_id: NodeId, ready: Ready, storage: RaftStorage) -> None:
        """`ready`'s write just became durable in `storage`."""
        if ready.hard_state is not None:
            self._check_hard_state(node_id, ready.hard_state)
        if ready.snapshot is not None:
            self._check_snapshot(node_id, ready.snapshot.index, ready.snapshot.term)
        if ready.entries:
            self._check_appended(node_id, ready.entries, storage)

    def on_recovered(self, node_id: NodeId, interrupted: Ready, storage: RaftStorage) -> None:
        """A crash cut `interrupted`'s write part-way and `storage` is what recovery
        found: whatever of the write survived (the hard state, a snapshot, a prefix of
        the entries) must obey the rules a completed write obeys."""
        self._check_hard_state(node_id, storage.initial_state()[0])
        snapshot = interrupted.snapshot
        if snapshot is not None and storage.snapshot().index == snapshot.index:
            self._check_snapshot(node_id, snapshot.index, storage.snapshot().term)
        if interrupted.entries:
            lo = max(interrupted.entries[0].index, storage.first_index())
            hi = storage.last_index() + 1
            if lo < hi:
                self._check_appended(node_id, tuple(storage.entries(lo, hi, _ALL_BYTES)), storage)

    def durable_hard_state(self, node_id: NodeId) -> HardState:
        """What node_id's disk holds: the checker sees every write, so no storage scan."""
        return self._durable_hard_state.get(node_id, HardState())

    def _check_hard_state(self, node_id: NodeId, new: HardState) -> None:
        old = self._durable_hard_state.get(node_id, HardState())
        if new.term < old.term or new.commit_index < old.commit_index:
            raise InvariantViolationError(
                "monotonic state", f"{node_id} persisted {new} after {old}: it went back"
            )
        if new.term == old.term and old.vote is not None and new.vote != old.vote:
            raise InvariantViolationError(
                "election safety",
                f"{node_id} voted for {old.vote} then {new.vote} in term {new.term}",
            )
        self._durable_hard_state[node_id] = new

    def _check_snapshot(self, node_id: NodeId, index: int, term: int) -> None:
        committed = self.committed.get(index)
        if committed is not None and committed.entry.term != term:
            raise InvariantViolationError(
                "log matching",
                f"{node_id} installed a snapshot at {index} of term {term}, "
                f"but the committed entry there has term {committed.entry.term}",
            )

    def _check_appended(
        self, node_id: NodeId, entries: tuple[Entry, ...], storage: RaftStorage
    ) -> None:
        first = entries[0].index
        prev_term = storage.term(first - 1)
        prev_next_offset = _next_offset_before(storage, first)
        for entry in entries:
            coord = (entry.index, entry.term)
            known = self._entry_by_coord.setdefault(coord, entry)
            known_prev = self._prev_term_by_coord.setdefault(coord, prev_term)
            if known != entry or known_prev != prev_term:
                raise InvariantViolationError(
                    "log matching",
                    f"{node_id} stored {entry} after term {prev_term}; another log has "
                    f"{known} after term {known_prev}",
                )
            if entry.offset != prev_next_offset:
                raise InvariantViolationError(
                    "log matching",
                    f"{node_id} stored {entry} but the previous entry ends at offset "
                    f"{prev_next_offset}: offsets must stay dense",
                )
            prev_term, prev_next_offset = entry.term, entry.next_offset

    def on_leader_persisted(
        self, node_id: NodeId, term: int, entries: tuple[Entry, ...], storage: RaftStorage
    ) -> None:
        """Leader completeness, checked when a leader's first entry of its own term is
        durable: everything before it is its log as elected (a leader never truncates)."""
        own = [e for e in entries if e.term == term]
        if not own or (node_id, term) in self._completeness_checked:
            return
        self._completeness_checked.add((node_id, term))
        first_own = own[0].index
        for index, committed in self.committed.items():
            if committed.min_apply_term >= term:
                continue  # perhaps committed in a later term than this leader's
            have = durable_term_at(storage, index) if index < first_own else None
            if have is None or have not in (0, committed.entry.term):
                raise InvariantViolationError(
                    "leader completeness",
                    f"{node_id} leads term {term} without {committed.entry} "
                    f"(committed by term {committed.min_apply_term})",
                )

    def on_send(self, node_id: NodeId, message: Message, storage: RaftStorage) -> None:
        """A message leaves node_id now: what it depends on must already be durable."""
        durable = self.durable_hard_state(node_id) if _depends_on_term(message) else None
        if durable is not None and durable.term < message.term:
            raise InvariantViolationError(
                "durability before acknowledgement",
                f"{node_id} sent {type(message).__name__} in term {message.term} "
                f"with only term {durable.term} durable",
            )
        if (
            isinstance(message, AppendEntriesResponse)
            and not message.reject
            and storage.last_index() < message.index
        ):
            raise InvariantViolationError(
                "durability before acknowledgement",
                f"{node_id} acknowledged index {message.index} to {message.to_id} "
                f"with only {storage.last_index()} durable",
            )
        if isinstance(message, RequestVoteResponse) and message.granted and not message.pre_vote:
            assert durable is not None
            if durable.term == message.term and durable.vote != message.to_id:
                raise InvariantViolationError(
                    "durability before acknowledgement",
                    f"{node_id} granted its term-{message.term} vote to {message.to_id} "
                    f"with vote {durable.vote} durable",
                )

    # application and the workload

    def on_apply(self, node_id: NodeId, life: int, entry: Entry, term_now: int) -> None:
        committed = self.committed.get(entry.index)
        if committed is None:
            self.committed[entry.index] = _Committed(entry, term_now)
        elif committed.entry != entry:
            raise InvariantViolationError(
                "state-machine safety",
                f"{node_id} applied {entry} where {committed.entry} was applied before",
            )
        else:
            committed.min_apply_term = min(committed.min_apply_term, term_now)
        self._note_configuration(entry)
        proposal = self._proposals.get(entry.payload)
        if (
            proposal is not None
            and (proposal.node_id, proposal.life) == (node_id, life)
            and (proposal.index, proposal.term) == (entry.index, entry.term)
        ):
            self.acknowledged[entry.index] = proposal

    def _note_configuration(self, entry: Entry) -> None:
        if entry.type is EntryType.CONFIG and entry.index > self._committed_configuration_index:
            self._committed_configuration_index = entry.index
            self.committed_configuration = Configuration.decode(entry.payload)

    def on_propose(self, proposal: Proposal) -> None:
        assert proposal.payload not in self._proposals, "workload payloads must be unique"
        self._proposals[proposal.payload] = proposal

    def on_read_issued(self, node_id: NodeId, context: bytes) -> None:
        self._read_floor[(node_id, context)] = max(self.committed, default=0)

    def on_read_state(self, node_id: NodeId, read_state: ReadState) -> None:
        floor = self._read_floor.pop((node_id, read_state.context), None)
        if floor is None:
            raise InvariantViolationError(
                "linearizable read", f"{node_id} answered a read it was never asked"
            )
        if read_state.index < floor:
            raise InvariantViolationError(
                "linearizable read",
                f"{node_id} answered a read at index {read_state.index}, "
                f"but index {floor} was committed before the read began",
            )
        self.reads_answered += 1

    # the end of a run

    def check_acknowledged_kept(self, storages: Mapping[NodeId, RaftStorage]) -> None:
        """Every acknowledged proposal is in every live member's durable, committed log."""
        for node_id, storage in storages.items():
            commit = storage.initial_state()[0].commit_index
            for index, proposal in self.acknowledged.items():
                entry = _durable_entry(storage, index)
                lost = entry is not None and (entry.term, entry.payload) != (
                    proposal.term,
                    proposal.payload,
                )
                if lost or commit < index or (entry is None and index > storage.last_index()):
                    raise InvariantViolationError(
                        "no acknowledged proposal lost",
                        f"{node_id} lacks acknowledged {proposal} (durable commit {commit})",
                    )


def _depends_on_term(message: Message) -> bool:
    if isinstance(message, RequestVote | RequestVoteResponse):
        return not message.pre_vote
    if isinstance(message, AppendEntriesResponse):
        return not message.reject
    return isinstance(message, AppendEntries | Heartbeat)


def _durable_entry(storage: RaftStorage, index: int) -> Entry | None:
    if index < storage.first_index() or index > storage.last_index():
        return None
    return storage.entries(index, index + 1, _ALL_BYTES)[0]


def _next_offset_before(storage: RaftStorage, index: int) -> int:
    snapshot = storage.snapshot()
    if index - 1 == snapshot.index:
        return snapshot.next_offset
    return storage.entries(index - 1, index, _ALL_BYTES)[0].next_offset
