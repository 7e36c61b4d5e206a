"""RaftNode: the sans-IO Raft core. One input method per kind of input (tick, step,
propose, propose_conf_change, transfer_leadership, read_index), one output (Ready),
one acknowledgement (advance).

What lives here: the state every role shares (term, vote, leader, log, timers), the
checks every message goes through (term comparison, vote requests), role changes
(become_*), and Ready bookkeeping. Role behaviour is in leader.py, candidate.py and
follower.py. This package may not do I/O: no asyncio, grpc, sockets, files, threads
or clocks (a test parses the imports). Time is ticks; randomness is the injected rng.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..log.entry import Entry, EntryType
from . import candidate, follower, leader
from .config import RaftConfig
from .errors import NotLeader
from .messages import (
    AppendEntries,
    AppendEntriesResponse,
    Heartbeat,
    InstallSnapshot,
    Message,
    RequestVote,
    RequestVoteResponse,
)
from .progress import Progress
from .raft_log import RaftLog
from .read_only import ReadOnly
from .ready import Ready
from .status import Status
from .storage import RaftStorage
from .types import (
    ConfChange,
    Configuration,
    HardState,
    NodeId,
    ReadState,
    Role,
    SoftState,
)


class RaftNode:
    def __init__(
        self,
        node_id: NodeId,
        storage: RaftStorage,
        config: RaftConfig,
        rng: random.Random,
        *,
        applied_index: int = 0,
    ) -> None:
        """`applied_index`: what the driver already applied before a restart (committed
        entries at or below it are not handed out again)."""
        hard_state, configuration = storage.initial_state()
        self.id = node_id
        self.config = config
        self.rng = rng
        self.log = RaftLog(storage, hard_state.commit_index, applied_index, configuration)
        self._term = hard_state.term
        self.vote: NodeId | None = hard_state.vote
        self.role = Role.FOLLOWER
        self.leader_id: NodeId | None = None
        self.election_elapsed_ticks = 0
        self.heartbeat_elapsed_ticks = 0
        self.randomized_election_timeout_ticks = 0
        self.progress: dict[NodeId, Progress] = {}
        self.votes: dict[NodeId, bool] = {}
        self.lead_transferee: NodeId | None = None
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.outbox: list[Message] = []
        self.outbox_after_persist: list[Message] = []
        self.read_states: list[ReadState] = []
        self._prev_hard_state = hard_state
        self._prev_soft_state = SoftState(None, Role.FOLLOWER)
        self._outstanding: Ready | None = None
        self.become_follower(hard_state.term, None)

    # read-only view

    @property
    def node_id(self) -> NodeId:
        return self.id

    @property
    def term(self) -> int:
        return self._term

    @term.setter
    def term(self, value: int) -> None:
        assert value >= self._term, f"term went back from {self._term} to {value}"
        self._term = value

    @property
    def commit_index(self) -> int:
        return self.log.commit_index

    @property
    def configuration(self) -> Configuration:
        return self.log.configuration

    @property
    def promotable(self) -> bool:
        """A voter of the configuration in force may campaign; so may a node whose removal
        is not committed yet (thesis §4.2.2: it may be needed to commit its own removal;
        its own vote does not count). Learners and nodes with no configuration never do."""
        log = self.log
        if self.id in log.configuration.voters:
            return True
        history = log.config_history
        return (
            len(history) >= 2
            and log.configuration_index > log.commit_index
            and self.id in history[-2][1].voters
        )

    def quorum(self) -> int:
        return len(self.log.configuration.voters) // 2 + 1

    def status(self) -> Status:
        views = {peer: pr.view() for peer, pr in self.progress.items()}
        return Status(
            node_id=self.id,
            term=self.term,
            role=self.role,
            leader_id=self.leader_id,
            commit_index=self.log.commit_index,
            applied_index=self.log.applied_index,
            last_index=self.log.last_index(),
            configuration=self.log.configuration,
            progress=views if self.role is Role.LEADER else {},
        )

    # inputs

    def tick(self) -> None:
        if self.role is Role.LEADER:
            leader.tick(self)
            return
        self.election_elapsed_ticks += 1
        if (
            self.promotable
            and self.election_elapsed_ticks >= self.randomized_election_timeout_ticks
        ):
            self.election_elapsed_ticks = 0
            candidate.campaign(self, transfer=False)

    def step(self, message: Message) -> None:
        assert message.to_id == self.id, f"message for {message.to_id} delivered to {self.id}"
        if message.term > self.term:
            if not self._accept_higher_term(message):
                return
        elif message.term < self.term:
            self._answer_stale(message)
            return
        if isinstance(message, RequestVote):
            self._handle_vote_request(message)
        elif self.role is Role.LEADER:
            leader.step(self, message)
        elif self.role is Role.FOLLOWER:
            follower.step(self, message)
        else:
            candidate.step(self, message)
        self.sync_configuration()

    def propose(self, payloads: Sequence[bytes], timestamp_ms: int) -> tuple[int, int]:
        """Append one DATA entry per payload; (first_index, last_index). Leader only."""
        if not payloads:
            raise ValueError("propose needs at least one payload")
        self._require_leader()
        return leader.propose(self, payloads, timestamp_ms)

    def propose_records(self, values: Sequence[bytes], timestamp_ms: int) -> int:
        """Append one RECORDS entry holding `values` (the records of one batch: one entry,
        one frame, one checksum for all of them); its index. Leader only."""
        if not values:
            raise ValueError("propose_records needs at least one value")
        self._require_leader()
        return leader.propose_records(self, values, timestamp_ms)

    def propose_conf_change(self, change: ConfChange, timestamp_ms: int) -> int:
        self._require_leader()
        index = leader.propose_conf_change(self, change, timestamp_ms)
        self.sync_configuration()
        leader.broadcast_append(self)
        return index

    def transfer_leadership(self, to_id: NodeId) -> None:
        self._require_leader()
        leader.transfer_leadership(self, to_id)

    def read_index(self, context: bytes) -> None:
        self._require_leader()
        leader.read_index(self, context)

    # output

    def has_ready(self) -> bool:
        log = self.log
        return bool(
            self._soft_state() != self._prev_soft_state
            or self._hard_state() != self._prev_hard_state
            or log.unstable_entries
            or log.unstable_snapshot is not None
            or self.outbox
            or self.outbox_after_persist
            or self.read_states
            or log.commit_index > max(log.applied_index, log.first_index() - 1)
        )

    def ready(self) -> Ready:
        assert self._outstanding is None, "ready() called again before advance()"
        hard_state = self._hard_state()
        ready = Ready(
            soft_state=self._soft_state(),
            hard_state=hard_state if hard_state != self._prev_hard_state else None,
            entries=tuple(self.log.unstable_entries),
            snapshot=self.log.unstable_snapshot,
            committed_entries=tuple(
                self.log.next_committed_entries(self.config.max_bytes_per_message)
            ),
            messages=tuple(self.outbox),
            messages_after_persist=tuple(self.outbox_after_persist),
            read_states=tuple(self.read_states),
        )
        self.outbox, self.outbox_after_persist, self.read_states = [], [], []
        self._prev_hard_state = hard_state
        self._prev_soft_state = ready.soft_state
        self._outstanding = ready
        return ready

    def send_commit_notices(self, commit_index: int | None = None) -> None:
        """Leader, with config.defer_commit_notices: send the current commit index to the
        followers that were not sent `commit_index` yet (default: the current one), an empty
        AppendEntries each; a driver passes the commit index it saw when it set its timer, so
        that a commit made just now waits for its own timer. No-op on other roles."""
        if self.role is Role.LEADER:
            target = self.log.commit_index if commit_index is None else commit_index
            leader.send_commit_notices(self, target)

    def commit_notices_owed(self) -> bool:
        """True if a leader has a commit index some follower has not been sent yet."""
        if self.role is not Role.LEADER:
            return False
        commit_index = self.log.commit_index
        return any(pr.commit_sent < commit_index for p, pr in self.progress.items() if p != self.id)

    def take_messages(self) -> list[Message]:
        """Drain the messages that may leave at once (those a Ready carries in `messages`),
        without waiting for a Ready. They promise nothing durable, so a driver may ship them
        while it still persists an earlier Ready: new entries then reach the followers
        during the leader's own fsync instead of after it (thesis §10.2.1)."""
        messages, self.outbox = self.outbox, []
        return messages

    def applied_to(self, index: int) -> None:
        """The driver applied committed, durable entries up to `index` between Readies (see
        take_messages); later Readies do not hand them out again."""
        self.log.applied_to(max(self.log.applied_index, index))

    def advance(self, ready: Ready) -> None:
        assert ready is self._outstanding, "advance() with a Ready this node did not hand out"
        self._outstanding = None
        log = self.log
        if ready.snapshot is not None:
            log.stable_snapshot_to(ready.snapshot.index)
        # A newer snapshot arrived meanwhile: every entry after it is unstable again.
        newer_snapshot = log.unstable_snapshot is not None
        if not newer_snapshot:
            log.stable_written(ready.entries)
        if ready.committed_entries:
            log.applied_to(max(log.applied_index, ready.committed_entries[-1].index))
        if self.role is Role.LEADER:
            leader.on_self_persisted(self)

    # role changes (the only places role changes)

    def become_follower(self, term: int, leader_id: NodeId | None) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader_id = leader_id

    def become_pre_candidate(self) -> None:
        assert self.role is not Role.LEADER, "a leader does not pre-campaign"
        self.role = Role.PRE_CANDIDATE
        self.leader_id = None
        self.votes = {}
        self._reset_randomized_election_timeout()

    def become_candidate(self) -> None:
        assert self.role is not Role.LEADER, "a leader does not campaign"
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def become_leader(self) -> None:
        assert self.role is Role.CANDIDATE, "only a candidate that won becomes leader"
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader_id = self.id
        last = self.log.last_index()
        # sorted: iteration order decides message order, and runs must replay exactly
        for peer in sorted(self.log.configuration.members | {self.id}):
            self.progress[peer] = Progress.new(last + 1, self.config.max_inflight_messages)
        own = self.progress[self.id]
        own.match_index = self.log.stable_last_index()
        own.become_replicate()
        # §5.4.2 / §8: a NOOP of our term lets us commit (and serve reads) at once; no
        # membership change until it commits (pending_conf_index covers the uncommitted tail).
        self.pending_conf_index = last + 1
        leader.append_entries(self, [self._noop_entry(last + 1)])
        leader.broadcast_append(self)

    def sync_configuration(self) -> None:
        """A configuration takes effect once appended (thesis §4.1): keep the leader's
        progress set equal to the members."""
        if self.role is Role.LEADER:
            leader.sync_progress(self)

    # helpers for the role modules

    def send(self, message: Message) -> None:
        """May leave before this Ready's entries and hard state are durable."""
        self.outbox.append(message)

    def send_after_persist(self, message: Message) -> None:
        """May leave only once this Ready's entries and hard state are durable."""
        self.outbox_after_persist.append(message)

    def in_lease(self) -> bool:
        """Thesis §4.2.3: while we hear from a leader, we ignore vote requests."""
        return (
            self.config.check_quorum
            and self.leader_id is not None
            and self.election_elapsed_ticks < self.config.election_timeout_ticks
        )

    def _accept_higher_term(self, message: Message) -> bool:
        if isinstance(message, RequestVote):
            if self.in_lease() and not message.transfer:
                return False
            if message.pre_vote:
                return True  # a pre-vote changes no term (thesis §9.6)
            self.become_follower(message.term, None)
            return True
        if isinstance(message, RequestVoteResponse) and message.pre_vote and message.granted:
            return True  # granted pre-votes carry the term we would campaign in
        from_leader = isinstance(message, AppendEntries | Heartbeat | InstallSnapshot)
        self.become_follower(message.term, message.from_id if from_leader else None)
        return True

    def _answer_stale(self, message: Message) -> None:
        if isinstance(message, AppendEntries | Heartbeat):
            if self.config.check_quorum or self.config.pre_vote:
                # A partitioned old leader learns our term and steps down; without this a
                # node that pre-votes could never disrupt it, and it would lead forever.
                self.send(AppendEntriesResponse(self.term, self.id, message.from_id, 0, True))
        elif isinstance(message, RequestVote) and message.pre_vote:
            self.send(RequestVoteResponse(self.term, self.id, message.from_id, False, True))

    def _handle_vote_request(self, message: RequestVote) -> None:
        can_vote = (
            self.vote == message.from_id
            or (self.vote is None and self.leader_id is None)
            or (message.pre_vote and message.term > self.term)
        )
        grant = can_vote and self.log.is_up_to_date(message.last_index, message.last_term)
        term = message.term if grant else self.term
        response = RequestVoteResponse(term, self.id, message.from_id, grant, message.pre_vote)
        if message.pre_vote:
            self.send(response)
            return
        if grant:
            self.election_elapsed_ticks = 0
            self.vote = message.from_id
        self.send_after_persist(response)  # the vote must be durable before it is known

    def _require_leader(self) -> None:
        if self.role is not Role.LEADER:
            raise NotLeader(self.leader_id)

    def _noop_entry(self, index: int) -> Entry:
        last = self.log.last_index()
        timestamp_ms = 0
        if last >= self.log.first_index():
            timestamp_ms = self.log.entries(last, last + 1, 0)[0].timestamp_ms
        # The core has no clock: the NOOP reuses the newest timestamp, keeping them monotonic.
        return Entry(index, self.term, EntryType.NOOP, self.log.next_offset(), timestamp_ms, b"")

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = None
            # An acceptance queued in the old term promises entries that a leader of the new
            # term may truncate before the next Ready persists anything: sent after that
            # persist, it would acknowledge entries the node no longer has (found by the
            # simulator, seed 10147). Drop it; the old leader re-sends what it still needs.
            self.outbox_after_persist = [
                m
                for m in self.outbox_after_persist
                if not (isinstance(m, AppendEntriesResponse) and not m.reject)
            ]
        self.leader_id = None
        self.election_elapsed_ticks = 0
        self.heartbeat_elapsed_ticks = 0
        self._reset_randomized_election_timeout()
        self.votes = {}
        self.progress = {}
        self.lead_transferee = None
        self.read_only.clear()

    def _reset_randomized_election_timeout(self) -> None:
        timeout = self.config.election_timeout_ticks
        self.randomized_election_timeout_ticks = self.rng.randrange(timeout, 2 * timeout)

    def _hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.commit_index)

    def _soft_state(self) -> SoftState:
        return SoftState(self.leader_id, self.role)
