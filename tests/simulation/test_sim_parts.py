"""The simulator's parts on their own: the network's faults, the disk's crash model,
and each checker firing on a crafted history (so a quiet checker means a safe run,
not a blind one)."""

from __future__ import annotations

import random

import pytest
from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.raft.memory import MemoryStorage
from logmesh_storage.raft.messages import AppendEntriesResponse, Heartbeat, RequestVoteResponse
from logmesh_storage.raft.ready import Ready
from logmesh_storage.raft.types import HardState, ReadState, Role, SoftState

from simulation.checkers import Checker, Proposal
from simulation.disk import SimDisk
from simulation.errors import InvariantViolationError
from simulation.network import Network, NetworkOptions

_SOFT = SoftState(None, Role.FOLLOWER)


def _heartbeat(from_id: str = "a", to_id: str = "b", term: int = 1) -> Heartbeat:
    return Heartbeat(term, from_id, to_id, 0)


def _entry(index: int, term: int, payload: bytes = b"x", offset: int | None = None) -> Entry:
    return Entry(index, term, EntryType.DATA, index - 1 if offset is None else offset, 0, payload)


def test_network_delivers_after_the_delay_and_never_before() -> None:
    network = Network(random.Random(1), NetworkOptions(delay_ticks_min=3, delay_ticks_max=3))
    network.send(_heartbeat(), now_tick=10)
    assert network.deliver_due(12) == []
    assert network.deliver_due(13) == [_heartbeat()]


def test_network_partition_cuts_packets_in_flight() -> None:
    network = Network(random.Random(1), NetworkOptions(delay_ticks_min=1, delay_ticks_max=1))
    network.send(_heartbeat("a", "b"), now_tick=0)
    network.send(_heartbeat("a", "c"), now_tick=0)
    network.partition([{"b"}])
    assert network.deliver_due(1) == [_heartbeat("a", "c")]


def test_network_loses_and_duplicates_at_the_configured_rates() -> None:
    options = NetworkOptions(loss_probability=0.5, duplicate_probability=0.5)
    network = Network(random.Random(7), options)
    for _ in range(1000):
        network.send(_heartbeat(), now_tick=0)
    delivered = len(network.deliver_due(10))
    assert network.packets_lost > 350
    assert delivered > 1000 - network.packets_lost  # some were duplicated


def test_disk_crash_loses_the_pending_write_and_keeps_the_durable_one() -> None:
    disk = SimDisk(MemoryStorage.bootstrap(["a"]))
    disk.begin(Ready(_SOFT, HardState(1, "a", 0), (_entry(1, 1),)), complete_tick=5)
    disk.complete()
    disk.begin(Ready(_SOFT, HardState(2, "a", 1), (_entry(2, 2),)), complete_tick=9)
    assert not disk.is_due(8)
    disk.crash()
    assert disk.pending is None
    assert disk.storage.last_index() == 1
    assert disk.storage.initial_state()[0] == HardState(1, "a", 0)


def test_checker_sees_two_leaders_in_one_term() -> None:
    checker = Checker()
    checker.observe("a", 1, term=3, role=Role.LEADER, commit=0)
    with pytest.raises(InvariantViolationError, match="election safety"):
        checker.observe("b", 1, term=3, role=Role.LEADER, commit=0)


def test_checker_sees_a_term_going_back_within_a_life_but_not_across_a_crash() -> None:
    checker = Checker()
    checker.observe("a", 1, term=3, role=Role.FOLLOWER, commit=5)
    checker.observe("a", 2, term=2, role=Role.FOLLOWER, commit=4)  # restarted: allowed
    with pytest.raises(InvariantViolationError, match="monotonic state"):
        checker.observe("a", 2, term=2, role=Role.FOLLOWER, commit=3)


def test_checker_sees_a_second_durable_vote_in_one_term() -> None:
    checker = Checker()
    storage = MemoryStorage.bootstrap(["a", "b", "c"])
    checker.on_persist("a", Ready(_SOFT, HardState(2, "b", 0)), storage)
    with pytest.raises(InvariantViolationError, match="election safety"):
        checker.on_persist("a", Ready(_SOFT, HardState(2, "c", 0)), storage)


def test_checker_sees_two_entries_with_one_index_and_term() -> None:
    checker = Checker()
    first, second = MemoryStorage.bootstrap(["a"]), MemoryStorage.bootstrap(["a"])
    first.save(None, [_entry(1, 1, b"x")], None)
    checker.on_persist("a", Ready(_SOFT, entries=(_entry(1, 1, b"x"),)), first)
    second.save(None, [_entry(1, 1, b"y")], None)
    with pytest.raises(InvariantViolationError, match="log matching"):
        checker.on_persist("b", Ready(_SOFT, entries=(_entry(1, 1, b"y"),)), second)


def test_checker_sees_a_gap_in_record_offsets() -> None:
    checker = Checker()
    storage = MemoryStorage.bootstrap(["a"])
    entries = (_entry(1, 1), _entry(2, 1, offset=5))
    storage.save(None, entries, None)
    with pytest.raises(InvariantViolationError, match="offsets must stay dense"):
        checker.on_persist("a", Ready(_SOFT, entries=entries), storage)


def test_checker_sees_an_ack_or_a_vote_before_it_is_durable() -> None:
    checker = Checker()
    storage = MemoryStorage.bootstrap(["a", "b"])
    with pytest.raises(InvariantViolationError, match="acknowledged index 1"):
        checker.on_send("b", AppendEntriesResponse(0, "b", "a", 1, False), storage)
    with pytest.raises(InvariantViolationError, match="durability"):
        checker.on_send("b", RequestVoteResponse(1, "b", "a", True), storage)


def test_checker_sees_two_different_entries_applied_at_one_index() -> None:
    checker = Checker()
    checker.on_apply("a", 1, _entry(1, 1, b"x"), term_now=1)
    with pytest.raises(InvariantViolationError, match="state-machine safety"):
        checker.on_apply("b", 1, _entry(1, 2, b"y"), term_now=2)


def test_checker_sees_an_acknowledged_proposal_missing_at_the_end() -> None:
    checker = Checker()
    checker.on_propose(Proposal("a", 1, 1, 1, b"x"))
    checker.on_apply("a", 1, _entry(1, 1, b"x"), term_now=1)
    assert list(checker.acknowledged) == [1]
    storage = MemoryStorage.bootstrap(["a"])
    with pytest.raises(InvariantViolationError, match="no acknowledged proposal lost"):
        checker.check_acknowledged_kept({"a": storage})


def test_checker_sees_a_stale_read() -> None:
    checker = Checker()
    checker.on_apply("a", 1, _entry(1, 1), term_now=1)
    checker.on_apply("a", 1, _entry(2, 1), term_now=1)
    checker.on_read_issued("a", b"r1")
    with pytest.raises(InvariantViolationError, match="linearizable read"):
        checker.on_read_state("a", ReadState(1, b"r1"))
