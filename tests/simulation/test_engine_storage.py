"""EngineStorage and EngineDisk on their own: the engine-backed storage answers exactly
as MemoryStorage does through any sequence of saves, compactions, resets and reopens;
a crash in the middle of a write leaves a prefix of it that recovery finds; an idle
crash changes nothing; the configuration at the base survives compaction and crashes."""

from __future__ import annotations

import random

import pytest
from logmesh_storage.log.config import LogConfig
from logmesh_storage.log.entry import Entry, EntryType
from logmesh_storage.log.fs import MemoryFileSystem
from logmesh_storage.raft.memory import MemoryStorage
from logmesh_storage.raft.ready import Ready
from logmesh_storage.raft.types import Configuration, HardState, Role, SnapshotMeta, SoftState

from simulation.crash_checks import check_crash_kept, durable_state
from simulation.engine_disk import ROOT_DIR, EngineDisk
from simulation.engine_storage import CONFIGS_FILE, RAFT_DIR, EngineStats, EngineStorage
from simulation.errors import StateFileDamagedError

_SMALL_SEGMENTS = LogConfig(segment_bytes_max=300)
_VOTERS = ("a", "b", "c")
_SOFT = SoftState(None, Role.FOLLOWER)
_ALL_BYTES = 1 << 62


def _next_entries(
    storage: MemoryStorage, first: int, term: int, count: int, rng: random.Random
) -> list[Entry]:
    """`count` entries from `first` in `term`, continuing storage's offsets."""
    if first - 1 == storage.snapshot().index:
        offset = storage.snapshot().next_offset
    else:
        offset = storage.entries(first - 1, first, _ALL_BYTES)[0].next_offset
    entries = []
    for index in range(first, first + count):
        kind = rng.choice([EntryType.DATA] * 4 + [EntryType.NOOP, EntryType.CONFIG])
        payload = {
            EntryType.DATA: f"record-{index}-{term}".encode(),
            EntryType.NOOP: b"",
            EntryType.CONFIG: Configuration(frozenset(rng.sample("abcde", 3))).encode(),
        }[kind]
        entry = Entry(index, term, kind, offset, index * 10, payload)
        entries.append(entry)
        offset = entry.next_offset
    return entries


def _assert_same(engine: EngineStorage, model: MemoryStorage) -> None:
    assert engine.initial_state() == model.initial_state()
    assert engine.snapshot() == model.snapshot()
    assert (engine.first_index(), engine.last_index()) == (model.first_index(), model.last_index())
    for index in range(model.snapshot().index, model.last_index() + 1):
        assert engine.term(index) == model.term(index)
    lo, hi = model.first_index(), model.last_index() + 1
    for max_bytes in (0, 40, _ALL_BYTES):
        assert engine.entries(lo, hi, max_bytes) == model.entries(lo, hi, max_bytes)


def _random_step(engine: EngineStorage, model: MemoryStorage, term: int, rng: random.Random) -> int:
    """One save or compaction on both storages; returns the term now in use."""
    commit = model.initial_state()[0].commit_index
    choice = rng.random()
    if choice < 0.5:  # append, perhaps over a conflicting uncommitted suffix
        term += rng.random() < 0.3
        first = rng.randint(max(commit, model.snapshot().index) + 1, model.last_index() + 1)
        if first <= model.last_index():
            term += 1  # a conflict comes from a newer leader
        entries = _next_entries(model, first, term, rng.randint(1, 8), rng)
        hard_state = HardState(term, "a", commit)
        engine.save(hard_state, entries, None)
        model.save(hard_state, entries, None)
    elif choice < 0.75:  # commit further
        new_commit = rng.randint(commit, model.last_index())
        hard_state = HardState(term, "a", new_commit)
        engine.save(hard_state, (), None)
        model.save(hard_state, (), None)
    elif choice < 0.95:  # compaction: the engine drops whole segments only
        engine.compact(rng.randint(model.snapshot().index, max(commit, model.snapshot().index)))
        model.compact(engine.snapshot().index)
    else:  # a snapshot from a leader far ahead
        term += 1
        index = model.last_index() + rng.randint(1, 20)
        snapshot = SnapshotMeta(index, term, Configuration(frozenset("bcd")), index * 2)
        hard_state = HardState(term, "b", index)
        engine.save(hard_state, (), snapshot)
        model.save(hard_state, (), snapshot)
    return term


@pytest.mark.parametrize("seed", range(6))
def test_engine_storage_answers_like_memory_storage_across_reopens(seed: int) -> None:
    rng = random.Random(seed)
    fs, stats = MemoryFileSystem(), EngineStats()
    engine = EngineStorage.open(fs, "/d", _SMALL_SEGMENTS, stats, _VOTERS)
    model = MemoryStorage.bootstrap(_VOTERS)
    term = 1
    for step in range(300):
        term = _random_step(engine, model, term, rng)
        _assert_same(engine, model)
        if step % 25 == 0:  # a clean restart: the state comes back from the files
            engine = EngineStorage.open(fs, "/d", _SMALL_SEGMENTS, stats)
            _assert_same(engine, model)
    assert stats.segments_rolled > 5 and stats.segments_dropped > 0
    assert stats.suffix_truncations > 0 and stats.resets > 0


def _entries_from(first: int, term: int, count: int, offset: int) -> tuple[Entry, ...]:
    return tuple(
        Entry(i, term, EntryType.DATA, offset + k, 0, b"x" * 20)
        for k, i in enumerate(range(first, first + count))
    )


def _disk_with_entries(rng_seed: int) -> EngineDisk:
    disk = EngineDisk(_SMALL_SEGMENTS, random.Random(rng_seed), _VOTERS)
    disk.begin(Ready(_SOFT, HardState(1, "a", 0), _entries_from(1, 1, 10, 0)), complete_tick=1)
    disk.complete()
    return disk


def test_a_crash_mid_write_leaves_a_prefix_that_recovery_finds() -> None:
    torn_cut = kept_whole = lost_whole = 0
    for rng_seed in range(60):
        disk = _disk_with_entries(rng_seed)
        written = _entries_from(11, 2, 5, 10)
        disk.begin(Ready(_SOFT, HardState(2, "b", 10), written), complete_tick=9)
        assert disk.pending is not None
        before = durable_state(disk.storage, disk.pending.ready)
        interrupted = disk.crash()
        check_crash_kept("a", before, interrupted, disk.storage)
        survived = disk.storage.last_index() - 10
        assert disk.storage.entries(11, 11 + survived, _ALL_BYTES) == list(written[:survived])
        hard_state = disk.storage.initial_state()[0]
        assert hard_state in (HardState(1, "a", 0), HardState(2, "b", 10))
        if hard_state.term == 2:
            assert survived == len(written), "the hard state is written after the entries"
        torn_cut += 0 < survived < len(written) and disk.stats.torn_tails_cut > 0
        kept_whole += survived == len(written)
        lost_whole += survived == 0
    # some crashes tore the batch (recovery cut a torn frame), some kept or lost it whole
    assert torn_cut > 0 and kept_whole > 0 and lost_whole > 0


def test_an_idle_crash_changes_nothing_that_was_synced() -> None:
    for rng_seed in range(20):
        disk = _disk_with_entries(rng_seed)
        disk.storage.compact(0)  # nothing committed: a no-op
        before = durable_state(disk.storage, None)
        assert disk.crash() is None
        check_crash_kept("a", before, None, disk.storage)
        assert disk.stats.torn_saves == 0 and disk.stats.recoveries == 1


def test_a_crash_mid_compaction_leaves_a_base_the_compaction_could_reach() -> None:
    bases = set()
    for rng_seed in range(30):
        disk = EngineDisk(_SMALL_SEGMENTS, random.Random(rng_seed), _VOTERS)
        for first in range(1, 41, 4):  # ten batches: ten segments
            batch = _entries_from(first, 1, 4, first - 1)
            disk.storage.save(HardState(1, "a", first + 3), batch, None)
        before = durable_state(disk.storage, None, compacting_to=30)
        assert disk.crash(compacting_to=30) is None
        check_crash_kept("a", before, None, disk.storage)
        bases.add(disk.storage.snapshot().index)
    # segments of 8 entries: a whole compaction drops 1-24; some crashes cut it short
    assert max(bases) == 24 and len(bases) > 1, bases


def test_the_configuration_at_the_base_survives_compaction_and_a_crash() -> None:
    disk = EngineDisk(_SMALL_SEGMENTS, random.Random(3), _VOTERS)
    joined = Configuration(frozenset("abcd"))
    entries = [
        *_entries_from(1, 1, 5, 0),
        Entry(6, 1, EntryType.CONFIG, 5, 0, joined.encode()),
        *_entries_from(7, 1, 30, 5),
    ]
    for k in range(0, len(entries), 4):  # a batch never spans segments: several saves
        disk.storage.save(HardState(1, "a", k), entries[k : k + 4], None)
    disk.storage.save(HardState(1, "a", 36), (), None)
    disk.storage.compact(30)
    base = disk.storage.snapshot().index
    assert 6 < base <= 30, "whole segments past the CONFIG entry were dropped"
    disk.crash()
    assert disk.storage.snapshot().index == base
    assert disk.storage.snapshot().configuration == joined
    assert disk.storage.initial_state()[1] == joined


def test_a_log_without_its_configuration_file_is_refused() -> None:
    disk = _disk_with_entries(0)
    disk.fs.remove(f"{ROOT_DIR}/{RAFT_DIR}/{CONFIGS_FILE}")
    with pytest.raises(StateFileDamagedError, match="missing, but the log holds entries"):
        EngineStorage.open(disk.fs, ROOT_DIR, _SMALL_SEGMENTS, EngineStats())
