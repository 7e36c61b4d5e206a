"""Known Raft bugs, planted into the core by patching it, to show that the checkers
catch them (test_planted_bugs.py, and `cli.py --plant NAME` to replay one), and known
storage bugs, planted into the log engine or the engine storage's state files, that
only engine mode can catch (test_simulation_engine.py, `--storage engine --plant NAME`).

Each bug is a context manager that swaps one function of the core for a buggy
version and restores it on exit. Nothing here is used by a normal run. The patches
know the core's private structure (module functions, RaftNode methods): if the core
is refactored, update them here, never in the core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from logmesh_storage.log.fs import FileSystem
from logmesh_storage.log.log import Log
from logmesh_storage.log.segment import Segment
from logmesh_storage.raft import leader as leader_module
from logmesh_storage.raft.messages import AppendEntriesResponse, Message
from logmesh_storage.raft.node import RaftNode
from logmesh_storage.raft.raft_log import RaftLog
from logmesh_storage.raft.types import Role

from . import engine_storage as engine_storage_module
from .state_files import TMP_SUFFIX


@contextmanager
def _patched(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


def commit_by_counting_replicas() -> AbstractContextManager[None]:
    """Raft paper §5.4.2 / Figure 8: a leader commits an entry of an earlier term as
    soon as a majority holds it, instead of only entries of its own term."""

    def maybe_commit(node: RaftNode) -> bool:
        voters = node.log.configuration.voters
        if not voters:
            return False
        matches = sorted((node.progress[v].match_index for v in voters), reverse=True)
        candidate = matches[node.quorum() - 1]
        if candidate <= node.log.commit_index:  # the term check is gone
            return False
        node.log.commit_to(candidate)
        leader_module._on_commit(node)
        return True

    return _patched(leader_module, "_maybe_commit", maybe_commit)


def vote_without_log_check() -> AbstractContextManager[None]:
    """§5.4.1: a voter grants its vote without checking that the candidate's log is
    at least as up to date as its own."""

    def is_up_to_date(self: RaftLog, last_index: int, last_term: int) -> bool:
        return True

    return _patched(RaftLog, "is_up_to_date", is_up_to_date)


def ack_before_durable() -> AbstractContextManager[None]:
    """A follower acknowledges appended entries at once, before they are durable
    (the AppendEntriesResponse goes into Ready.messages, not messages_after_persist)."""
    original: Callable[[RaftNode, Message], None] = RaftNode.send_after_persist

    def send_after_persist(self: RaftNode, message: Message) -> None:
        if isinstance(message, AppendEntriesResponse):
            self.send(message)
        else:
            original(self, message)

    return _patched(RaftNode, "send_after_persist", send_after_persist)


def no_step_down_on_higher_term() -> AbstractContextManager[None]:
    """§5.1: a leader that sees a higher term adopts it but forgets to become a
    follower, so it goes on leading, now in the newer term."""
    original: Callable[[RaftNode, Message], bool] = RaftNode._accept_higher_term

    def accept_higher_term(self: RaftNode, message: Message) -> bool:
        if self.role is Role.LEADER:
            self.term = message.term
            self.vote = None
            return True
        return original(self, message)

    return _patched(RaftNode, "_accept_higher_term", accept_higher_term)


PLANTED_BUGS: dict[str, Callable[[], AbstractContextManager[None]]] = {
    "commit-by-counting": commit_by_counting_replicas,
    "vote-without-log-check": vote_without_log_check,
    "ack-before-durable": ack_before_durable,
    "no-step-down": no_step_down_on_higher_term,
}


def append_without_fsync() -> AbstractContextManager[None]:
    """The book's bug: the log writes a batch and returns without fsync, so an entry
    the node acknowledged may live only in the page cache when the power goes."""

    def write(self: Log, active: Segment, data: bytes) -> None:
        active.store.append(data)

    return _patched(Log, "_write", write)


def state_file_renamed_unsynced() -> AbstractContextManager[None]:
    """The classic rename bug: the hard state's temp file is renamed over the old one
    without an fsync of its contents, so after a crash the name may point at a torn
    file (or lose the vote the node already acted on)."""

    def write_atomic(fs: FileSystem, directory: str, name: str, data: bytes) -> None:
        path = f"{directory}/{name}"
        tmp = fs.open(path + TMP_SUFFIX, create=True)
        try:
            tmp.truncate(0)
            tmp.append(data)
        finally:
            tmp.close()
        fs.rename(path + TMP_SUFFIX, path)
        fs.sync_dir(directory)

    return _patched(engine_storage_module, "write_atomic", write_atomic)


PLANTED_ENGINE_BUGS: dict[str, Callable[[], AbstractContextManager[None]]] = {
    "append-without-fsync": append_without_fsync,
    "state-file-renamed-unsynced": state_file_renamed_unsynced,
}
