"""Check a produce workload's history against the logs read back from every node.

A workload records every produce it attempts (`History.invoke`) and how the call ended:
acknowledged at an offset, certainly failed (the write was never proposed), or unknown (a
deadline or a connection lost mid-call: it may have committed). At the end it reads every
node's committed log and `check(history, logs)` decides, Jepsen-style, for logmesh's single
totally ordered log:

- no acknowledged record lost, and each found at exactly the offset acknowledged;
- no value twice in the log (values are unique by construction: `make_value`);
- offsets dense from the first retained offset, and no offset acknowledged twice;
- no record whose produce certainly failed, and no record nobody wrote;
- acknowledgements respect real time: a produce acknowledged before another began has the
  smaller offset;
- a batch (`History.batch`) is all or nothing: its records are all in the log, at consecutive
  offsets in order, or none is, whatever its outcome;
- every node holds the same committed sequence: logs agree where they overlap, and (when
  asked) all end at the same offset;
- what readers saw during the run (`observed`) is in the final log at the same offsets: only
  committed records may ever be visible.

An unknown outcome is never a failure: the read-back decides it (present or absent), and the
report counts both. This module may not talk to the network or to any service: it only
compares what it is given, so the integration tests and a soak command use it alike.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# How many examples of each kind of violation a report spells out; the counts stay exact.
EXAMPLES_MAX = 5


class Outcome(enum.Enum):
    """How a produce call ended. PENDING: never completed (counts as unknown)."""

    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Operation:
    """One produced record: its unique value, how the call ended, and when (clock seconds)."""

    value: bytes
    outcome: Outcome
    offset: int | None  # set only for OK
    invoked_s: float
    completed_s: float | None  # None while PENDING


def make_value(writer: int, seq: int, size_bytes: int = 0) -> bytes:
    """A value no other (writer, seq) pair produces, padded with '.' to size_bytes."""
    head = b"w%d-%d|" % (writer, seq)
    return head + b"." * max(0, size_bytes - len(head))


class History:
    """The produce operations of a workload. Thread-safe: many producers may record at once.

    Record a batch as one operation per record (invoke each value, then `batch` to say they
    go together, then `ok_batch` or failed/unknown per value)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ops: dict[bytes, Operation] = {}
        self._counts = dict.fromkeys(Outcome, 0)
        self._batches: list[tuple[bytes, ...]] = []

    def invoke(self, value: bytes) -> None:
        """Call just before sending the produce of `value` (unique within the history)."""
        with self._lock:
            _require(value not in self._ops, f"value {value!r} recorded twice: use make_value")
            self._ops[value] = Operation(value, Outcome.PENDING, None, self._clock(), None)
            self._counts[Outcome.PENDING] += 1

    def batch(self, values: Sequence[bytes]) -> None:
        """The invoked `values` are one batch: all of them or none may end up in the log."""
        with self._lock:
            _require(all(v in self._ops for v in values), "a batch of values never invoked")
            self._batches.append(tuple(values))

    def batches(self) -> list[tuple[bytes, ...]]:
        with self._lock:
            return list(self._batches)

    def ok(self, value: bytes, offset: int) -> None:
        """The produce of `value` was acknowledged at `offset`."""
        _require(offset >= 0, f"negative offset {offset} acknowledged")
        self._complete(value, Outcome.OK, offset)

    def ok_batch(self, values: Sequence[bytes], first_offset: int) -> None:
        """A batch was acknowledged: values[i] at first_offset + i."""
        for i, value in enumerate(values):
            self.ok(value, first_offset + i)

    def failed(self, value: bytes) -> None:
        """The produce of `value` certainly did not write it (it was never proposed)."""
        self._complete(value, Outcome.FAILED, None)

    def unknown(self, value: bytes) -> None:
        """The produce of `value` may or may not have committed (deadline, lost connection)."""
        self._complete(value, Outcome.UNKNOWN, None)

    def operations(self) -> list[Operation]:
        with self._lock:
            return list(self._ops.values())

    def count(self, outcome: Outcome) -> int:
        """How many operations have this outcome now (cheap: for progress checks)."""
        with self._lock:
            return self._counts[outcome]

    def __len__(self) -> int:
        with self._lock:
            return len(self._ops)

    def _complete(self, value: bytes, outcome: Outcome, offset: int | None) -> None:
        with self._lock:
            op = self._ops.get(value)
            _require(op is not None, f"value {value!r} completed but never invoked")
            assert op is not None  # for the type checker: _require raised otherwise
            _require(op.outcome is Outcome.PENDING, f"value {value!r} completed twice")
            self._ops[value] = Operation(value, outcome, offset, op.invoked_s, self._clock())
            self._counts[Outcome.PENDING] -= 1
            self._counts[outcome] += 1


@dataclass(frozen=True, slots=True)
class NodeLog:
    """What one node returned when its committed log was read: (offset, value), ascending."""

    node: str
    records: Sequence[tuple[int, bytes]]

    @property
    def start_offset(self) -> int | None:
        return self.records[0][0] if self.records else None

    @property
    def next_offset(self) -> int | None:
        return self.records[-1][0] + 1 if self.records else None


@dataclass
class CheckReport:
    """What `check` found. `ok` is true when `violations` is empty."""

    acknowledged: int = 0
    failed: int = 0
    unknown: int = 0  # includes calls that never completed
    unknown_present: int = 0
    unknown_absent: int = 0
    acknowledged_truncated: int = 0  # acknowledged below the retained start: not checkable
    lost: int = 0
    duplicated: int = 0
    misplaced: int = 0
    failed_present: int = 0
    unexpected: int = 0
    reordered: int = 0
    batches: int = 0
    torn_batches: int = 0  # part of a batch in the log: a violation
    observed_records: int = 0  # records readers saw during the run, all checked
    committed_records: int = 0
    node_ranges: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        """One printable line with every count."""
        verdict = "PASS" if self.ok else f"FAIL ({len(self.violations)} violations)"
        return (
            f"history {verdict}: acknowledged={self.acknowledged} "
            f"unknown={self.unknown} (present={self.unknown_present} "
            f"absent={self.unknown_absent}) failed={self.failed} lost={self.lost} "
            f"duplicated={self.duplicated} misplaced={self.misplaced} "
            f"failed_present={self.failed_present} unexpected={self.unexpected} "
            f"reordered={self.reordered} batches={self.batches} "
            f"torn_batches={self.torn_batches} observed={self.observed_records} "
            f"committed={self.committed_records} "
            f"nodes={len(self.node_ranges)}"
        )

    def describe(self, lines_max: int = 30) -> str:
        """The summary and the first lines_max violations, one per line."""
        shown = self.violations[:lines_max]
        more = len(self.violations) - len(shown)
        tail = [f"... and {more} more"] if more > 0 else []
        return "\n".join([self.summary(), *(f"  - {v}" for v in shown), *tail])

    def as_dict(self) -> dict[str, Any]:
        """The counts and violations as JSON-ready values."""
        counts = {k: v for k, v in vars(self).items() if isinstance(v, int)}
        return {"ok": self.ok, **counts, "violations": list(self.violations)}

    def assert_ok(self) -> None:
        """Raise AssertionError with `describe()` unless every property holds."""
        if not self.ok:
            raise AssertionError(self.describe())


def check(
    history: History | Iterable[Operation],
    logs: Sequence[NodeLog],
    *,
    start_offset: int = 0,
    require_converged: bool = True,
    foreign_ok: bool = False,
    observed: Sequence[NodeLog] = (),
) -> CheckReport:
    """Compare the history with every node's committed log.

    start_offset: the first offset the cluster still retains (records below it were dropped by
    retention; acknowledgements there are counted, not checked). require_converged: every node
    must end at the same offset (read after the cluster has settled). foreign_ok: records
    whose value is not in the history are allowed (other writers shared the log). observed:
    what readers saw while the workload ran (each dense, in order); every record seen must be
    in the final log at the same offset, since only committed records may ever be visible."""
    ops = history.operations() if isinstance(history, History) else list(history)
    report = CheckReport(node_ranges={n.node: (n.start_offset, n.next_offset) for n in logs})
    _require(bool(logs), "check needs the log of at least one node")
    committed = _merge_node_logs(logs, report)
    _check_dense(committed, start_offset, report)
    if require_converged:
        _check_converged(logs, report)
    positions = _positions(committed)
    report.committed_records = len(committed)
    _check_operations(ops, positions, start_offset, report)
    _check_duplicates_and_foreign(ops, positions, foreign_ok, report)
    _check_real_time_order(ops, report)
    if isinstance(history, History):
        _check_batches(history.batches(), positions, start_offset, report)
    _check_observed(observed, committed, report)
    return report


def _merge_node_logs(logs: Sequence[NodeLog], report: CheckReport) -> dict[int, bytes]:
    """The union of all node logs by offset; a node disagreeing with another is divergence."""
    committed: dict[int, bytes] = {}
    first_holder: dict[int, str] = {}
    for node_log in logs:
        _check_node_dense(node_log, report)
        diverged = 0
        for offset, value in node_log.records:
            seen = committed.get(offset)
            if seen is None:
                committed[offset], first_holder[offset] = value, node_log.node
            elif seen != value:
                diverged += 1
                if diverged <= EXAMPLES_MAX:
                    report.violations.append(
                        f"diverged: {node_log.node} has {value!r} at offset {offset}, "
                        f"{first_holder[offset]} has {seen!r}"
                    )
    return committed


def _check_node_dense(node_log: NodeLog, report: CheckReport) -> None:
    start = node_log.start_offset
    for i, (offset, _value) in enumerate(node_log.records):
        assert start is not None
        if offset != start + i:
            report.violations.append(
                f"gap: {node_log.node} returned offset {offset} where {start + i} was due"
            )
            return  # one gap per node says enough; the rest follows from it


def _check_dense(committed: Mapping[int, bytes], start_offset: int, report: CheckReport) -> None:
    if not committed:
        return
    low, high = min(committed), max(committed)
    if low != start_offset:
        report.violations.append(
            f"gap: the committed log starts at offset {low}, expected {start_offset}"
        )
    missing = (high - low + 1) - len(committed)
    if missing:
        first = next(o for o in range(low, high + 1) if o not in committed)
        report.violations.append(
            f"gap: no node holds {missing} offsets between {low} and {high} (first: {first})"
        )


def _check_converged(logs: Sequence[NodeLog], report: CheckReport) -> None:
    ends = {n.node: n.next_offset or 0 for n in logs}
    if len(set(ends.values())) > 1:
        report.violations.append(f"not converged: nodes end at different offsets {ends}")


def _check_observed(
    observed: Sequence[NodeLog], committed: Mapping[int, bytes], report: CheckReport
) -> None:
    """A record a reader saw that the final log does not hold at that offset was visible
    before it was committed (or a committed record was lost since)."""
    end = max(committed, default=-1) + 1
    low = min(committed, default=0)
    for reader in observed:
        _check_node_dense(reader, report)
        report.observed_records += len(reader.records)
        wrong = 0
        for offset, value in reader.records:
            final = committed.get(offset)
            if offset < low or final == value:
                continue  # below the retained start nothing can be compared
            wrong += 1
            if wrong <= EXAMPLES_MAX:
                held = f"nothing (it ends at {end})" if final is None else repr(final)
                report.violations.append(
                    f"read not in the final log: {reader.node} saw {value!r} at offset "
                    f"{offset}, the final log holds {held}"
                )


def _check_batches(
    batches: Sequence[tuple[bytes, ...]],
    positions: Mapping[bytes, list[int]],
    start_offset: int,
    report: CheckReport,
) -> None:
    """Each batch is in the log whole, at consecutive offsets in order, or not at all. Only
    a prefix dropped by retention (the rest starting at start_offset) may be missing."""
    for values in batches:
        report.batches += 1
        offsets = [positions[v][0] if v in positions else None for v in values]
        present = [o for o in offsets if o is not None]
        if not present:
            continue
        missing = len(values) - len(present)
        cut_by_retention = present[0] == start_offset and all(o is None for o in offsets[:missing])
        if missing and not cut_by_retention:
            report.torn_batches += 1
            if report.torn_batches <= EXAMPLES_MAX:
                report.violations.append(
                    f"torn batch: {len(present)} of the {len(values)} records of the batch "
                    f"starting {values[0]!r} are in the log"
                )
        elif present != list(range(present[0], present[0] + len(present))):
            report.torn_batches += 1
            if report.torn_batches <= EXAMPLES_MAX:
                report.violations.append(
                    f"torn batch: the batch starting {values[0]!r} is not at consecutive "
                    f"offsets in order: {present[:10]}"
                )


def _positions(committed: Mapping[int, bytes]) -> dict[bytes, list[int]]:
    positions: dict[bytes, list[int]] = {}
    for offset in sorted(committed):
        positions.setdefault(committed[offset], []).append(offset)
    return positions


def _check_operations(
    ops: Sequence[Operation],
    positions: Mapping[bytes, list[int]],
    start_offset: int,
    report: CheckReport,
) -> None:
    acked_at: dict[int, bytes] = {}
    for op in ops:
        found = positions.get(op.value, [])
        if op.outcome is Outcome.OK:
            report.acknowledged += 1
            _check_acknowledged(op, found, start_offset, acked_at, report)
        elif op.outcome is Outcome.FAILED:
            report.failed += 1
            if found:
                report.failed_present += 1
                _example(report, report.failed_present, f"failed but present: {op.value!r}")
        else:
            report.unknown += 1
            if found:
                report.unknown_present += 1
            else:
                report.unknown_absent += 1


def _check_acknowledged(
    op: Operation,
    found: Sequence[int],
    start_offset: int,
    acked_at: dict[int, bytes],
    report: CheckReport,
) -> None:
    offset = op.offset
    assert offset is not None, "an acknowledged operation always has its offset"
    other = acked_at.setdefault(offset, op.value)
    if other != op.value:
        report.violations.append(f"offset {offset} acknowledged twice: {other!r}, {op.value!r}")
    if offset < start_offset:
        report.acknowledged_truncated += 1
    elif not found:
        report.lost += 1
        _example(report, report.lost, f"lost: {op.value!r} acknowledged at offset {offset}")
    elif offset not in found:
        report.misplaced += 1
        _example(
            report,
            report.misplaced,
            f"misplaced: {op.value!r} acknowledged at offset {offset}, found at {list(found)}",
        )


def _check_duplicates_and_foreign(
    ops: Sequence[Operation],
    positions: Mapping[bytes, list[int]],
    foreign_ok: bool,
    report: CheckReport,
) -> None:
    known = {op.value for op in ops}
    for value, offsets in positions.items():
        if len(offsets) > 1:
            report.duplicated += 1
            _example(report, report.duplicated, f"duplicated: {value!r} at offsets {offsets}")
        if value not in known:
            report.unexpected += 1
            if not foreign_ok:
                _example(report, report.unexpected, f"unexpected: {value!r} at {offsets}")


def _check_real_time_order(ops: Sequence[Operation], report: CheckReport) -> None:
    """An acknowledgement that came before another produce began must have the lower offset.

    Sweep the acknowledged operations by invocation time, keeping the highest offset among
    those completed strictly earlier."""
    acked = [op for op in ops if op.outcome is Outcome.OK]
    by_completion = sorted(acked, key=lambda op: op.completed_s or 0.0)
    by_invocation = sorted(acked, key=lambda op: op.invoked_s)
    best: Operation | None = None
    i = 0
    for op in by_invocation:
        while i < len(by_completion) and (by_completion[i].completed_s or 0.0) < op.invoked_s:
            done = by_completion[i]
            if best is None or (done.offset or 0) > (best.offset or 0):
                best = done
            i += 1
        if best is not None and (best.offset or 0) >= (op.offset or 0):
            report.reordered += 1
            _example(
                report,
                report.reordered,
                f"reordered: {op.value!r} began after {best.value!r} was acknowledged at "
                f"offset {best.offset}, yet was acknowledged at offset {op.offset}",
            )


def _example(report: CheckReport, count: int, violation: str) -> None:
    """Record a violation, spelling out only the first EXAMPLES_MAX of each kind."""
    if count <= EXAMPLES_MAX:
        report.violations.append(violation)
    elif count == EXAMPLES_MAX + 1:
        report.violations.append(f"(more like the above: {violation.split(':', maxsplit=1)[0]})")


def _require(condition: bool, message: str) -> None:
    """A misuse of the recorder is a bug in the workload: crash, never carry on."""
    if not condition:
        raise AssertionError(message)
