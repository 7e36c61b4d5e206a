"""The log engine against a model, with crashes at operation boundaries and inside
operations (a sync that fails part-way through an append, truncate, drop, reset).

After any crash: everything acknowledged is there, what is there is a prefix of what
was written (or the old or the new state of a reset), nothing is invented.
"""

from __future__ import annotations

import contextlib
import os
import random

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from logmesh_storage.log import (
    Entry,
    EntryType,
    FsyncFailed,
    IndexCompacted,
    IndexOutOfRange,
    Log,
    LogBase,
    LogConfig,
    LogFull,
    MemoryFileSystem,
    OffsetOutOfRange,
    OffsetTruncated,
    RecordBlock,
)
from logmesh_storage.log.entry import decode_records, encode_records

DIRECTORY = "/data/log"
CONFIG = LogConfig(segment_bytes_max=300, retention_bytes_max=900, retention_age_ms_max=50)

batch_specs = st.lists(
    st.tuples(
        st.sampled_from(
            [EntryType.DATA, EntryType.DATA, EntryType.RECORDS, EntryType.NOOP, EntryType.CONFIG]
        ),
        st.integers(0, 40),
    ),
    min_size=1,
    max_size=6,
)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.fs = MemoryFileSystem()
        self.rng = random.Random(0)
        self.log = Log.open(self.fs, DIRECTORY, CONFIG)
        self.model: list[Entry] = []
        self.base = LogBase(0, 0, 0)
        self.term = 1
        self.now_ms = 0

    @initialize(seed=st.integers(0, 2**32 - 1))
    def seed(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- model helpers -------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return self.model[-1].index if self.model else self.base.index

    @property
    def next_offset(self) -> int:
        return self.model[-1].next_offset if self.model else self.base.next_offset

    def make_batch(self, spec: list[tuple[EntryType, int]], term_bump: bool) -> list[Entry]:
        self.now_ms += 7
        term = self.term + (1 if term_bump else 0)
        batch, index, offset = [], self.last_index + 1, self.next_offset
        for type_, size in spec:
            if type_ is EntryType.RECORDS:  # 1-5 records of up to `size` bytes
                values = [
                    self.rng.randbytes(self.rng.randint(0, size)) for _ in range(size % 5 + 1)
                ]
                payload = encode_records(values)
            else:
                payload = b"" if type_ is EntryType.NOOP else self.rng.randbytes(size)
            entry = Entry(index, term, type_, offset, self.now_ms, payload)
            batch.append(entry)
            index, offset = index + 1, entry.next_offset
        return batch

    def reopen_after_crash(self) -> None:
        self.fs.syncs_until_failure = None
        self.fs.crash(self.rng)
        self.log = Log.open(self.fs, DIRECTORY, CONFIG)

    def log_entries(self) -> list[Entry]:
        if self.log.last_index < self.log.first_index:
            return []
        return self.log.entries(self.log.first_index, self.log.last_index + 1)

    def adopt_log_prefix(self, old: list[Entry], written: list[Entry]) -> None:
        """After a crash inside an append: the log is `old` plus a prefix of `written`."""
        actual = self.log_entries()
        assert actual[: len(old)] == old, "an acknowledged entry was lost or changed"
        assert actual[len(old) :] == written[: len(actual) - len(old)], "invented entries"
        self.model = actual

    # -- rules ---------------------------------------------------------------------

    @rule(spec=batch_specs, term_bump=st.booleans())
    def append(self, spec: list[tuple[EntryType, int]], term_bump: bool) -> None:
        batch = self.make_batch(spec, term_bump)
        self.log.append(batch)
        self.model += batch
        self.term = batch[-1].term

    @rule(spec=batch_specs, syncs=st.integers(0, 3))
    def append_then_crash(self, spec: list[tuple[EntryType, int]], syncs: int) -> None:
        batch = self.make_batch(spec, False)
        old = list(self.model)
        self.fs.syncs_until_failure = syncs
        with contextlib.suppress(FsyncFailed):
            self.log.append(batch)
        self.reopen_after_crash()
        self.adopt_log_prefix(old, batch)

    @rule(spec=batch_specs, room=st.integers(0, 200))
    def append_on_full_disk(self, spec: list[tuple[EntryType, int]], room: int) -> None:
        batch = self.make_batch(spec, False)
        self.fs.capacity_bytes = sum(len(self.fs.read_bytes(p)) for p in self.all_paths()) + room
        try:
            self.log.append(batch)
            self.model += batch
        except LogFull:
            pass  # nothing of the batch may be visible: the invariants check it
        self.fs.capacity_bytes = None

    def all_paths(self) -> list[str]:
        return [f"{DIRECTORY}/{n}" for n in self.fs.list_dir(DIRECTORY)]

    @rule()
    def crash(self) -> None:
        self.reopen_after_crash()
        assert self.log_entries() == self.model

    @rule()
    def close_and_reopen(self) -> None:
        self.log.close()
        self.log = Log.open(self.fs, DIRECTORY, CONFIG)

    @rule(data=st.data())
    def truncate_suffix(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(self.base.index + 1, self.last_index + 1))
        self.log.truncate_suffix(index)
        self.model = [e for e in self.model if e.index < index]

    @rule(data=st.data(), syncs=st.integers(0, 4))
    def truncate_suffix_then_crash(self, data: st.DataObject, syncs: int) -> None:
        index = data.draw(st.integers(self.base.index + 1, self.last_index + 1))
        old = list(self.model)
        self.fs.syncs_until_failure = syncs
        with contextlib.suppress(FsyncFailed):
            self.log.truncate_suffix(index)
        self.reopen_after_crash()
        actual = self.log_entries()
        assert actual == old[: len(actual)], "truncation left something not written"
        assert len(actual) >= len([e for e in old if e.index < index])
        self.model = actual

    def check_prefix_drop(self, old_first: int, bound: int) -> None:
        new_first = self.log.first_index
        assert old_first <= new_first <= max(old_first, bound)
        if new_first > old_first:
            before = next(e for e in self.model if e.index == new_first - 1)
            assert self.log.base == LogBase(before.index, before.term, before.next_offset)
            self.base = self.log.base
            self.model = [e for e in self.model if e.index >= new_first]

    @rule(data=st.data())
    def drop_prefix(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(self.base.index, self.last_index + 1))
        old_first = self.log.first_index
        self.log.drop_prefix(index)
        self.check_prefix_drop(old_first, index)

    @rule(data=st.data(), age_ms=st.integers(0, 100))
    def apply_retention(self, data: st.DataObject, age_ms: int) -> None:
        upto = data.draw(st.integers(self.base.index, self.last_index))
        self.now_ms += age_ms
        old_first = self.log.first_index
        removed = self.log.apply_retention(upto, self.now_ms)
        self.check_prefix_drop(old_first, upto + 1)
        assert all(p not in self.log.segment_paths for p in removed)

    @rule(gap=st.integers(-3, 5), syncs=st.one_of(st.none(), st.integers(0, 3)))
    def reset(self, gap: int, syncs: int | None) -> None:
        index = max(0, self.last_index + gap)
        term = self.term + 1
        new_base = LogBase(index, term, self.next_offset + max(gap, 0))
        self.fs.syncs_until_failure = syncs
        try:
            self.log.reset(new_base.index, new_base.term, new_base.next_offset)
        except FsyncFailed:
            self.reopen_after_crash()
            if self.log.base != new_base:  # the crash came before the commit point
                assert self.log_entries() == self.model
                return
        self.fs.syncs_until_failure = None
        self.model, self.base, self.term = [], new_base, term

    # -- reads ---------------------------------------------------------------------

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def read_by_index(self, data: st.DataObject) -> None:
        entry = data.draw(st.sampled_from(self.model))
        assert self.log.entry(entry.index) == entry
        assert self.log.term_at(entry.index) == entry.term
        lo = entry.index
        hi = data.draw(st.integers(lo + 1, self.last_index + 1))
        max_bytes = data.draw(st.one_of(st.none(), st.integers(0, 100)))
        got = self.log.entries(lo, hi, max_bytes)
        assert got == self.model[lo - self.model[0].index : lo - self.model[0].index + len(got)]
        assert len(got) >= 1
        if max_bytes is not None and len(got) < hi - lo:
            assert sum(len(e.payload) for e in got[1:]) <= max_bytes
            assert (
                sum(len(e.payload) for e in got) + len(self.log.entry(lo + len(got)).payload)
                > max_bytes
            )

    @rule(data=st.data())
    def read_by_offset(self, data: st.DataObject) -> None:
        records = [r for e in self.model for r in as_records(e)]
        first_offset = self.base.next_offset
        offset = data.draw(st.integers(max(0, first_offset - 2), self.next_offset + 2))
        if offset < first_offset:
            self.expect_raise(OffsetTruncated, self.log.read_offset, offset)
            self.expect_raise(OffsetTruncated, self.log.read_records, offset, 1, self.last_index)
        elif offset > self.next_offset:
            self.expect_raise(OffsetOutOfRange, self.log.read_offset, offset)
            self.expect_raise(OffsetOutOfRange, self.log.read_records, offset, 1, self.last_index)
        elif offset == self.next_offset:
            self.expect_raise(OffsetOutOfRange, self.log.read_offset, offset)
            assert len(self.log.read_records(offset, 1, self.last_index)) == 0  # the end
        else:
            assert self.log.read_offset(offset) == records[offset - first_offset]
            max_index = data.draw(st.integers(self.base.index, self.last_index))
            count = data.draw(st.integers(1, 5))
            got = self.log.read_from_offset(offset, count, max_index)
            wanted = [r for r in records if r.offset >= offset and r.index <= max_index][:count]
            assert got == wanted
            block = self.log.read_records(offset, count, max_index)  # the same, as columns
            assert list(zip(*columns(block), strict=True)) == [
                (r.offset, r.term, r.timestamp_ms, r.payload) for r in wanted
            ]

    @rule()
    def read_out_of_range(self) -> None:
        self.expect_raise(IndexOutOfRange, self.log.entry, self.last_index + 1)
        if self.base.index >= 1:
            self.expect_raise(IndexCompacted, self.log.entry, self.base.index)

    @staticmethod
    def expect_raise(error: type[Exception], call: object, *args: int) -> None:
        try:
            call(*args)  # type: ignore[operator]
        except error:
            return
        raise AssertionError(f"expected {error.__name__}")

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def shape_matches_model(self) -> None:
        assert self.log.base == self.base
        assert self.log.first_index == self.base.index + 1
        assert self.log.last_index == self.last_index
        assert self.log.next_offset == self.next_offset
        assert self.log.first_offset == self.base.next_offset
        configs = [e.index for e in self.model if e.type is EntryType.CONFIG]
        assert self.log.config_indices() == configs
        if self.model:
            assert self.log.term_at(self.base.index) == self.base.term

    @invariant()
    def contents_match_model(self) -> None:
        assert self.log_entries() == self.model


TestLogMachine = LogMachine.TestCase
# A deeper, randomized run (about 50 s): LOG_STATEFUL_EXAMPLES=1500 pytest this file.
DEEP_EXAMPLES = int(os.environ.get("LOG_STATEFUL_EXAMPLES", "0"))
TestLogMachine.settings = settings(
    max_examples=DEEP_EXAMPLES or 120,
    stateful_step_count=40,
    deadline=None,
    derandomize=not DEEP_EXAMPLES,  # the same runs every time unless asked for a deep run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def columns(block: RecordBlock) -> tuple[list[int], list[int], list[int], list[bytes]]:
    return (
        list(block.offsets),
        list(block.terms),
        list(block.timestamps_ms),
        list(block.payloads),
    )


def as_records(entry: Entry) -> list[Entry]:
    """The records of a model entry as the log reads them back: DATA entries."""
    if entry.type is EntryType.DATA:
        return [entry]
    if entry.type is not EntryType.RECORDS:
        return []
    return [
        Entry(entry.index, entry.term, EntryType.DATA, entry.offset + k, entry.timestamp_ms, v)
        for k, v in enumerate(decode_records(entry.payload))
    ]
