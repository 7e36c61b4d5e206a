"""The asyncio driver around the sans-IO Raft core: tick, step, propose, and handle Ready.

For each Ready, in the order ready.py prescribes: send `messages` at once; persist entries,
snapshot and hard state in the writer thread (the event loop keeps serving meanwhile, so every
proposal that arrives during a write joins the next Ready: group commit, one fsync per batch);
then send `messages_after_persist`; apply committed entries (wake the produce calls waiting for
them and the consumers following the tail); then advance. The core is touched only from the
event loop thread; the writer thread touches only the storage adapter.

The fast path (docs/raft.md, "Performance notes"): after every input (step, propose, tick) the
driver does at once what need not wait for a Ready: it applies committed entries that are
already durable here and ships the messages that may leave before any fsync (the leader's
AppendEntries go out while it still persists the previous Ready). Every node persists in the
writer thread, so messages arriving during an fsync share the next one; a leader defers
commit-only AppendEntries (COMMIT_NOTICE_DELAY_S).

It may not know gRPC: servicers translate its logmesh errors into statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from logmesh.errors import (
    LogmeshError,
    NoLeaderError,
    NotLeaderError,
    OutcomeUnknownError,
    UnavailableError,
)

from ..log.entry import Entry
from ..raft.errors import NotLeader, ProposalDropped
from ..raft.messages import Message
from ..raft.node import RaftNode
from ..raft.ready import Ready
from ..raft.status import Status
from ..raft.types import ConfChange, Role, SnapshotMeta
from .notify import Notifier
from .peers import PeerTable
from .raft_storage import LogRaftStorage

log = logging.getLogger(__name__)


# With RaftConfig.defer_commit_notices: how long a leader waits for the next AppendEntries to
# carry a new commit index before it sends a follower an empty one for it. Longer than a
# client's turn-around between two writes, short next to a heartbeat.
COMMIT_NOTICE_DELAY_S = 0.005
# A node whose last write ended this long ago writes a Ready of at most this many entries on
# the event loop (see Driver._may_persist_inline).
INLINE_PERSIST_IDLE_S = 0.001
INLINE_PERSIST_ENTRIES_MAX = 16
_T = TypeVar("_T")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class MessageSender(Protocol):
    """Where Ready messages go: transport.Transport, or a twin in tests."""

    def send(self, messages: Iterable[Message]) -> None: ...

    async def close(self) -> None: ...


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("saving the peer table failed: %s", future.exception())


@dataclass(slots=True)
class _Waiter:
    """A proposal waiting to be applied: its last index, its term and how many records."""

    term: int
    count: int  # records proposed; 0 for a membership change
    future: asyncio.Future[int]


class Driver:
    def __init__(
        self,
        raft: RaftNode,
        storage: LogRaftStorage,
        transport: MessageSender,
        peers: PeerTable,
        *,
        tick_s: float,
    ) -> None:
        self.raft = raft
        self.storage = storage
        self.transport = transport
        self.peers = peers
        self.tick_s = tick_s
        self.node_id = raft.node_id
        status = raft.status()
        self.applied_index = status.applied_index
        # The offset the next committed record gets: consumers see offsets below it.
        self.committed_next_offset = storage.next_offset_after(self.applied_index)
        self.applied = Notifier()  # fires when applied_index moves (consumers wait on it)
        self.state = Notifier()  # fires when role, leader, membership or `serving` changes
        # A leader is known and this node applied all it knows committed (health SERVING);
        # evaluated after each round of Readies, so it does not flap inside one.
        self.serving = False
        self.accepting_writes = True
        self.stopped = False
        self.stopped_event = asyncio.Event()  # for tasks that must end with the driver
        self._soft = (status.leader_id, status.role)
        self._configuration = status.configuration
        # By the index of a proposal's last entry; a list, as a node that lost and regained
        # leadership may propose again at an index whose first proposal is still unresolved.
        self._waiters: dict[int, list[_Waiter]] = {}
        self._wake = asyncio.Event()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="raft-writer")
        self._tasks: list[asyncio.Task[None]] = []
        self._crashed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tick_hooks: list[Callable[[], None]] = []
        self._commit_notice: asyncio.TimerHandle | None = None
        self._noticed_commit_index = 0  # commit notices were sent up to here: at most once each
        self._notice_commit_index = 0  # the commit index the pending notice timer is for
        self._retention_running = False
        self._writer_jobs = 0  # submitted to the writer thread and not finished
        self._persisted_at_s = 0.0  # time.monotonic() when the last Ready write ended

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._log_membership()  # the starting point, for whoever follows the log lines
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._tick_loop(), name="raft-ticker"),
            loop.create_task(self._ready_loop(), name="raft-ready"),
        ]

    async def wait_failed(self) -> None:
        """Returns (raising) when a driver task dies or the core broke an invariant: the node
        must stop (an fsync failed, or a bug)."""
        done, _ = await asyncio.wait(
            [*self._tasks, self._crashed], return_when=asyncio.FIRST_EXCEPTION
        )
        for task in done:
            task.result()

    @contextlib.contextmanager
    def _core(self) -> Iterator[None]:
        """Around calls into the core made by RPC handlers: grpc would catch an
        AssertionError there and keep serving; a broken invariant must stop the node."""
        try:
            yield
        except AssertionError as e:
            if not self._crashed.done():
                self._crashed.set_exception(e)
            raise

    async def stop(self) -> None:
        """Stop ticking and persisting, fail what still waits, close transport and storage."""
        self.accepting_writes = False
        self.stopped = True
        self.stopped_event.set()
        for task in self._tasks:
            task.cancel()
        if self._commit_notice is not None:
            self._commit_notice.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_waiters(
            lambda _index: True,
            OutcomeUnknownError(
                "the node stopped before the write committed; it may still commit through the "
                "other nodes: check the log before retrying"
            ),
        )
        self.applied.fire()
        self.state.fire()
        await self.transport.close()
        await asyncio.get_running_loop().run_in_executor(self._writer, self.storage.close)
        self._writer.shutdown(wait=True)

    # ---- inputs --------------------------------------------------------------------------------

    def step(self, messages: Iterable[Message]) -> None:
        if self.stopped:
            return
        with self._core():
            for message in messages:
                self.raft.step(message)
            self._flush()
        self._wake.set()

    def peers_changed(self) -> None:
        """The peer table changed: save it (in the writer thread, after pending writes)."""
        if self.stopped:
            return
        saved = asyncio.ensure_future(self._in_writer(self.peers.save, self.peers.snapshot()))
        saved.add_done_callback(_log_failure)

    def apply_retention(self) -> None:
        """Drop old segments per the retention limits, in the writer thread (so it never runs
        beside an append), up to what this node has applied."""
        if self.stopped or self._retention_running:
            return
        self._retention_running = True
        done = asyncio.ensure_future(
            self._in_writer(self.storage.apply_retention, self.applied_index, now_ms())
        )
        done.add_done_callback(self._retention_done)

    def _retention_done(self, future: asyncio.Future[bool]) -> None:
        self._retention_running = False
        if future.cancelled():
            return
        if future.exception() is not None:
            # The engine marked itself failed; the next save raises and stops the node.
            log.error("retention failed: %s", future.exception())
        elif future.result():
            first_index, first_offset = self.storage.first_index(), self.storage.first_offset()
            log.info(
                "retention: the log now starts at index %d, offset %d",
                first_index,
                first_offset,
                extra={
                    "event": "retention",
                    "first_index": first_index,
                    "first_offset": first_offset,
                },
            )

    async def wait_for(
        self, predicate: Callable[[], bool], notifier: Notifier, timeout_s: float
    ) -> bool:
        """Wait until `predicate()` holds, re-checking each time `notifier` fires; False on
        timeout or when the driver stops."""

        async def until() -> None:
            while not self.stopped:
                change = notifier.next_change()
                if predicate():
                    return
                await change.wait()

        try:
            await asyncio.wait_for(until(), timeout_s)
        except TimeoutError:
            return False
        return predicate()

    def has_pending_writes(self) -> bool:
        return any(not w.future.done() for ws in self._waiters.values() for w in ws)

    async def propose(self, payloads: list[bytes]) -> int:
        """Replicate records; returns the first one's offset once a majority has them on disk
        and this node has applied them. Several records go in one RECORDS entry: one frame,
        checksum and Raft entry for the batch instead of one per record (docs/raft.md,
        "Performance notes")."""
        return await self.propose_nowait(payloads)

    def propose_nowait(self, payloads: list[bytes]) -> asyncio.Future[int]:
        """`propose`, with the proposal made (and its AppendEntries sent) before this returns:
        the future is the first offset. A stream proposes each request as it arrives without a
        task per request (one event-loop turn less before the entries leave)."""
        self._check_accepting()
        try:
            with self._core():
                if len(payloads) == 1:
                    _first, last = self.raft.propose(payloads, now_ms())
                else:
                    last = self.raft.propose_records(payloads, now_ms())
        except NotLeader as e:
            raise self.not_leader_error(e.leader_id) from None
        except ProposalDropped as e:
            raise UnavailableError(str(e)) from None
        return self._waiter(last, len(payloads))

    async def change_membership(self, change: ConfChange) -> int:
        """Propose a membership change; returns its index once applied (raft errors pass)."""
        self._check_accepting()
        try:
            with self._core():
                index = self.raft.propose_conf_change(change, now_ms())
        except NotLeader as e:
            raise self.not_leader_error(e.leader_id) from None
        except ProposalDropped as e:
            raise UnavailableError(str(e)) from None
        return await self._wait(index, 0)

    def propose_conf_change_now(self, change: ConfChange) -> None:
        """Propose a membership change without waiting for it (raft errors pass)."""
        with self._core():
            self.raft.propose_conf_change(change, now_ms())
            self._flush()
        self._wake.set()

    def transfer_leadership(self, to_id: str) -> None:
        """Start handing leadership to `to_id` (raft errors pass)."""
        with self._core():
            self.raft.transfer_leadership(to_id)
            self._flush()
        self._wake.set()

    def not_leader_error(self, leader_id: str | None) -> LogmeshError:
        if leader_id is None or leader_id == self.node_id:
            return NoLeaderError()
        return NotLeaderError(leader_id, self.peers.address(leader_id))

    def status(self) -> Status:
        return self.raft.status()

    def is_leader(self) -> bool:
        return self.raft.role is Role.LEADER

    def leader_id(self) -> str | None:
        return self.raft.leader_id

    def _check_accepting(self) -> None:
        if not self.accepting_writes:
            raise UnavailableError(
                "this node is shutting down and takes no new writes: retry on another node"
            )

    async def _wait(self, index: int, count: int) -> int:
        return await self._waiter(index, count)

    def _waiter(self, index: int, count: int) -> asyncio.Future[int]:
        """A future for the proposal ending at `index`; sends its AppendEntries now."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(index, []).append(_Waiter(self.raft.term, count, future))
        with self._core():
            self._flush()  # the AppendEntries leave now, not after the Ready being persisted
        self._wake.set()
        return future

    # ---- the loops -----------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.raft.tick()
            self._flush()
            for hook in self.tick_hooks:
                hook()
            self._wake.set()

    async def _ready_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.raft.has_ready():
                ready = self.raft.ready()
                await self._handle(ready)
                self.raft.advance(ready)
                self._flush()  # a leader's own durable copy may have moved the commit index
            self._note_soft_state()

    async def _handle(self, ready: Ready) -> None:
        self._send(ready.messages)
        hard_state = ready.hard_state
        if (
            ready.snapshot is not None
            or ready.entries
            or (hard_state is not None and self.storage.hard_state_needs_write(hard_state))
        ):
            if self._may_persist_inline(ready):
                self.storage.save(hard_state, ready.entries, ready.snapshot)
            else:
                await self._in_writer(self.storage.save, hard_state, ready.entries, ready.snapshot)
            self._persisted_at_s = time.monotonic()
        elif hard_state is not None:
            self.storage.note_hard_state(hard_state)  # a commit-only change: no disk write
        self._send(ready.messages_after_persist)
        if ready.snapshot is not None:
            self._restored(ready.snapshot)
        if ready.committed_entries:
            self._apply(ready.committed_entries)

    def _may_persist_inline(self, ready: Ready) -> bool:
        """Whether to write this Ready on the event loop instead of in the writer thread.

        Under load, always the writer thread: while it fsyncs, the loop keeps taking
        proposals and AppendEntries, which then share the next fsync (persisting on the loop
        made a follower fsync once per message: concurrent producers got ~800/s instead of
        ~1,400/s). But the two thread switches cost a lone write ~0.3 ms of its ~2.4 ms (the
        writer must win the GIL back, then wake the loop), so a node that has been idle
        since its last write (nothing for the writer to group with) writes a small Ready
        on the loop. Never beside another writer job (retention, the peer table)."""
        return (
            self._writer_jobs == 0
            and ready.snapshot is None
            and len(ready.entries) <= INLINE_PERSIST_ENTRIES_MAX
            and time.monotonic() - self._persisted_at_s >= INLINE_PERSIST_IDLE_S
        )

    async def _in_writer(self, call: Callable[..., _T], *args: object) -> _T:
        """`call(*args)` in the writer thread, counted (see _may_persist_inline)."""
        self._writer_jobs += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._writer, call, *args)
        finally:
            self._writer_jobs -= 1

    def _flush(self) -> None:
        """What need not wait for the next Ready, done after every input: answer the writes
        that are committed and durable here, then ship the messages that may leave at once.
        In that order, so that on a commit the client's answer is queued before the commit
        notices to the followers."""
        self._apply_durable()
        self._send(self.raft.take_messages())
        if (
            self._commit_notice is None
            and self.raft.commit_index > self._noticed_commit_index
            and self.raft.commit_notices_owed()
        ):
            loop = asyncio.get_running_loop()
            self._notice_commit_index = self.raft.commit_index
            self._commit_notice = loop.call_later(COMMIT_NOTICE_DELAY_S, self._notify_commit)

    def _notify_commit(self) -> None:
        """Send the commit index to followers no AppendEntries told it meanwhile."""
        self._commit_notice = None
        if self.stopped:
            return
        self._noticed_commit_index = self._notice_commit_index
        with self._core():
            self.raft.send_commit_notices(self._notice_commit_index)
            self._send(self.raft.take_messages())
        self._wake.set()

    def _apply_durable(self) -> None:
        """Apply committed entries this node holds on disk, without waiting for a Ready: the
        loop may be persisting a later Ready meanwhile (the entries it writes are not
        counted: they are only "stable" for the core once advance() saw them)."""
        log = self.raft.log
        commit_index = min(log.commit_index, log.stable_last_index())
        lo = self.applied_index + 1
        if commit_index < lo or log.unstable_snapshot is not None or lo < log.first_index():
            return  # nothing new; or a snapshot restart, which its Ready handles
        self._apply(log.entries(lo, commit_index + 1, self.raft.config.max_bytes_per_message))
        self.raft.applied_to(self.applied_index)  # so no Ready hands them out again

    def _send(self, messages: Iterable[Message]) -> None:
        remote: list[Message] = []
        local: list[Message] = []
        for message in messages:
            (local if message.to_id == self.node_id else remote).append(message)
        if remote:
            self.transport.send(remote)
        for message in local:
            self.raft.step(message)
        if local:
            self._send(self.raft.take_messages())

    def _apply(self, entries: Sequence[Entry]) -> None:
        """Apply `entries` (contiguous, in order); those at or below applied_index were
        applied already (by _apply_durable, before their Ready). Per waiter, not per entry:
        a batch of records is many entries and one waiter (docs/raft.md, "Performance
        notes")."""
        if not entries or entries[-1].index <= self.applied_index:
            return
        first_index, last = entries[0].index, entries[-1]
        assert last.index - first_index == len(entries) - 1, "applying a gap"
        lo = max(first_index, self.applied_index + 1)
        for index in sorted(i for i in self._waiters if lo <= i <= last.index):
            entry = entries[index - first_index]
            for waiter in self._waiters.pop(index):
                self._resolve(waiter, entry)
        self.applied_index = last.index
        self.committed_next_offset = last.next_offset
        self.applied.fire()

    @staticmethod
    def _resolve(waiter: _Waiter, entry: Entry) -> None:
        """`entry` was applied at the index `waiter` waits for: it is the proposal if it has
        the proposal's term (one leader per term, and a leader never rewrites its own log)."""
        if waiter.future.done():
            return  # the caller went away (deadline, cancel)
        if entry.term != waiter.term:
            waiter.future.set_exception(
                UnavailableError(
                    "leadership changed before the write committed, and another entry took "
                    "its place: it was not written; retry on the new leader"
                )
            )
        elif waiter.count:
            waiter.future.set_result(entry.next_offset - waiter.count)
        else:
            waiter.future.set_result(entry.index)

    def _restored(self, snapshot: SnapshotMeta) -> None:
        """The log restarted after `snapshot` (this node was behind the leader's retained
        start): proposals at or below it can no longer be tracked here."""
        self._fail_waiters(
            lambda index: index <= snapshot.index,
            OutcomeUnknownError(
                "this node lost track of the write while catching up from a snapshot: check the "
                "log before retrying"
            ),
        )
        self.applied_index = snapshot.index
        self.committed_next_offset = snapshot.next_offset
        log.info(
            "log restarted after snapshot index %d (term %d, next offset %d)",
            snapshot.index,
            snapshot.term,
            snapshot.next_offset,
            extra={
                "event": "snapshot",
                "index": snapshot.index,
                "next_offset": snapshot.next_offset,
            },
        )
        self.applied.fire()

    def _fail_waiters(self, which: Callable[[int], bool], error: LogmeshError) -> None:
        for index in [i for i in self._waiters if which(i)]:
            for waiter in self._waiters.pop(index):
                if not waiter.future.done():
                    waiter.future.set_exception(error)

    def _note_soft_state(self) -> None:
        """Log role, leader and membership changes (tests and operators follow these lines),
        and wake whoever waits on `state` when one of them, or `serving`, changed. Only then:
        a wake-up on every Ready would cost each write a few task switches."""
        serving = self.raft.leader_id is not None and self.applied_index >= self.raft.commit_index
        soft = (self.raft.leader_id, self.raft.role)
        changed = soft != self._soft or serving != self.serving
        self.serving = serving
        if soft != self._soft:
            self._soft = soft
            role, leader = soft[1].value, soft[0]
            log.info(
                "raft role %s, leader %s, term %d",
                role,
                leader,
                self.raft.term,
                extra={"event": "role", "role": role, "leader": leader, "term": self.raft.term},
            )
        if self.raft.configuration != self._configuration:
            self._configuration = self.raft.configuration
            self._log_membership()
            changed = True
        if changed:
            self.state.fire()

    def _log_membership(self) -> None:
        voters = sorted(self._configuration.voters)
        learners = sorted(self._configuration.learners)
        log.info(
            "membership voters %s learners %s",
            voters,
            learners,
            extra={"event": "membership", "voters": voters, "learners": learners},
        )
