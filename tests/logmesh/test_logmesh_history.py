"""The history checker on hand-made histories: correct ones pass, each kind of fault fails."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logmesh.history import (
    CheckReport,
    History,
    NodeLog,
    Operation,
    Outcome,
    check,
    make_value,
)


class Ticks:
    """A clock that moves only when told: invocation and completion times are exact."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def logs_of(values: Sequence[bytes], nodes: int = 3, start: int = 0) -> list[NodeLog]:
    records = [(start + i, v) for i, v in enumerate(values)]
    return [NodeLog(f"storage-{i}", records) for i in range(nodes)]


def sequential(history: History, values: Sequence[bytes], first_offset: int = 0) -> None:
    for i, value in enumerate(values):
        history.invoke(value)
        history.ok(value, first_offset + i)


def test_clean_history_passes_with_every_outcome_counted() -> None:
    history = History(Ticks())
    acked = [make_value(0, i) for i in range(4)]
    sequential(history, acked)
    history.invoke(b"failed")
    history.failed(b"failed")
    history.invoke(b"unknown-in")
    history.unknown(b"unknown-in")
    history.invoke(b"unknown-out")
    history.unknown(b"unknown-out")
    history.invoke(b"never-completed")

    report = check(history, logs_of([*acked, b"unknown-in"]))

    assert history.count(Outcome.OK) == 4 and history.count(Outcome.PENDING) == 1

    assert report.ok, report.describe()
    assert (report.acknowledged, report.failed, report.unknown) == (4, 1, 3)
    assert (report.unknown_present, report.unknown_absent) == (1, 2)
    assert (report.lost, report.duplicated, report.misplaced) == (0, 0, 0)
    assert report.committed_records == 5
    assert report.node_ranges == {f"storage-{i}": (0, 5) for i in range(3)}
    assert "PASS" in report.summary()
    assert "acknowledged=4" in report.summary() and "lost=0" in report.summary()
    report.assert_ok()


def test_lost_acknowledged_record_fails() -> None:
    history = History(Ticks())
    values = [make_value(0, i) for i in range(3)]
    sequential(history, values)

    # The last acknowledged record is missing on every node.
    report = check(history, logs_of(values[:2]))

    assert not report.ok
    assert report.lost == 1
    assert any("lost" in v and "offset 2" in v for v in report.violations)
    assert "FAIL" in report.summary() and "lost=1" in report.summary()
    with pytest.raises(AssertionError, match="lost"):
        report.assert_ok()


def test_record_at_another_offset_than_acknowledged_fails() -> None:
    history = History(Ticks())
    a, b = make_value(0, 0), make_value(1, 0)
    history.invoke(a)
    history.invoke(b)
    history.ok(a, 0)
    history.ok(b, 1)

    report = check(history, logs_of([b, a]))

    assert report.misplaced == 2
    assert not report.ok


def test_value_twice_in_log_is_a_duplicate() -> None:
    history = History(Ticks())
    a = make_value(0, 0)
    history.invoke(a)
    history.unknown(a)

    report = check(history, logs_of([a, a]))

    assert report.duplicated == 1
    assert report.unknown_present == 1
    assert any("duplicated" in v for v in report.violations)


def test_record_whose_produce_failed_must_be_absent() -> None:
    history = History(Ticks())
    a = make_value(0, 0)
    history.invoke(a)
    history.failed(a)

    report = check(history, logs_of([a]))

    assert report.failed_present == 1
    assert not report.ok


def test_record_nobody_wrote_fails_unless_foreign_records_are_allowed() -> None:
    history = History(Ticks())
    a = make_value(0, 0)
    sequential(history, [a])
    logs = logs_of([a, b"someone-else"])

    strict = check(history, logs)
    lenient = check(history, logs, foreign_ok=True)

    assert strict.unexpected == 1 and not strict.ok
    assert lenient.unexpected == 1 and lenient.ok, lenient.describe()


def test_hole_in_a_node_log_is_a_gap() -> None:
    history = History(Ticks())
    values = [make_value(0, i) for i in range(3)]
    sequential(history, values)
    holey = NodeLog("storage-0", [(0, values[0]), (2, values[2])])

    report = check(history, [holey])

    assert any("gap: storage-0 returned offset 2 where 1 was due" in v for v in report.violations)
    assert any("no node holds 1 offsets" in v for v in report.violations)


def test_log_not_starting_at_the_retained_start_is_a_gap() -> None:
    history = History(Ticks())
    values = [make_value(0, i) for i in range(3)]
    sequential(history, values)

    report = check(history, logs_of(values[1:], start=1))

    assert any("starts at offset 1, expected 0" in v for v in report.violations)


def test_retention_start_makes_early_acknowledgements_uncheckable_not_lost() -> None:
    history = History(Ticks())
    values = [make_value(0, i) for i in range(5)]
    sequential(history, values)

    report = check(history, logs_of(values[3:], start=3), start_offset=3)

    assert report.ok, report.describe()
    assert report.acknowledged_truncated == 3
    assert report.lost == 0


def test_nodes_disagreeing_at_an_offset_diverged() -> None:
    history = History(Ticks())
    values = [make_value(0, i) for i in range(2)]
    sequential(history, values)
    good = NodeLog("storage-0", [(0, values[0]), (1, values[1])])
    bad = NodeLog("storage-1", [(0, values[0]), (1, b"other")])

    report = check(history, [good, bad], foreign_ok=True)

    assert any(v.startswith("diverged: storage-1") for v in report.violations)


def test_lagging_node_fails_only_when_convergence_is_required() -> None:
    history = History(Ticks())
    values = [make_value(0, i) for i in range(3)]
    sequential(history, values)
    logs = [*logs_of(values, nodes=2), NodeLog("storage-2", [(0, values[0])])]

    converged = check(history, logs)
    prefix_only = check(history, logs, require_converged=False)

    assert any("not converged" in v for v in converged.violations)
    assert prefix_only.ok, prefix_only.describe()
    assert prefix_only.node_ranges["storage-2"] == (0, 1)


def test_empty_node_log_is_behind_the_others() -> None:
    history = History(Ticks())
    a = make_value(0, 0)
    sequential(history, [a])

    report = check(history, [*logs_of([a], nodes=2), NodeLog("storage-2", [])])

    assert any("not converged" in v for v in report.violations)


def test_one_offset_acknowledged_to_two_values_fails() -> None:
    history = History(Ticks())
    a, b = make_value(0, 0), make_value(1, 0)
    history.invoke(a)
    history.invoke(b)
    history.ok(a, 0)
    history.ok(b, 0)

    report = check(history, logs_of([a, b]))

    assert any("offset 0 acknowledged twice" in v for v in report.violations)


def test_acknowledgement_before_a_later_produce_began_must_have_the_lower_offset() -> None:
    history = History(Ticks())
    a, b = make_value(0, 0), make_value(1, 0)
    history.invoke(a)
    history.ok(a, 1)  # a is acknowledged ...
    history.invoke(b)  # ... before b begins, yet b claims the lower offset
    history.ok(b, 0)

    report = check(history, logs_of([b, a]))

    assert report.reordered == 1
    assert any(v.startswith("reordered") for v in report.violations)


def test_overlapping_produces_may_commit_in_either_order() -> None:
    history = History(Ticks())
    a, b = make_value(0, 0), make_value(1, 0)
    history.invoke(a)
    history.invoke(b)
    history.ok(a, 1)
    history.ok(b, 0)

    report = check(history, logs_of([b, a]))

    assert report.ok, report.describe()


def test_batch_acknowledgement_places_each_record() -> None:
    history = History(Ticks())
    batch = [make_value(0, i) for i in range(3)]
    for value in batch:
        history.invoke(value)
    history.ok_batch(batch, first_offset=0)

    assert check(history, logs_of(batch)).ok
    assert check(history, logs_of([batch[1], batch[0], batch[2]])).misplaced == 2


def unknown_batch(history: History, values: Sequence[bytes]) -> None:
    for value in values:
        history.invoke(value)
    history.batch(values)
    for value in values:
        history.unknown(value)


def test_a_batch_is_in_the_log_whole_or_not_at_all() -> None:
    history = History(Ticks())
    whole, absent, torn = ([make_value(w, i) for i in range(3)] for w in (1, 2, 3))
    for values in (whole, absent, torn):
        unknown_batch(history, values)

    fine = check(history, logs_of(whole))
    assert fine.ok and (fine.batches, fine.torn_batches) == (3, 0)

    report = check(history, logs_of([*whole, *torn[:2]]))
    assert report.torn_batches == 1
    assert "torn batch: 2 of the 3 records" in report.describe()

    report = check(history, logs_of([*whole, torn[1], torn[0], torn[2]]))
    assert report.torn_batches == 1 and "not at consecutive offsets in order" in report.describe()


def test_a_batch_cut_by_retention_is_not_torn() -> None:
    history = History(Ticks())
    values = [make_value(1, i) for i in range(4)]
    unknown_batch(history, values)
    assert check(history, logs_of(values[2:], start=2), start_offset=2).ok  # the first 2 dropped
    assert not check(history, logs_of(values[:2])).ok  # the last ones cannot have been dropped


def test_many_violations_are_counted_exactly_and_shown_in_part() -> None:
    history = History(Ticks())
    values = [make_value(0, i) for i in range(20)]
    sequential(history, values)

    report = check(history, logs_of(values[:2]))

    assert report.lost == 18
    assert len([v for v in report.violations if v.startswith("lost")]) == 5
    assert "(more like the above: lost)" in report.violations
    assert len(report.describe(lines_max=2).splitlines()) == 4  # summary, 2 lines, "... more"


def test_reads_during_the_run_must_match_the_final_log() -> None:
    history = History(Ticks())
    values = [make_value(0, i) for i in range(4)]
    sequential(history, values)
    final = logs_of(values)
    prefix = NodeLog("reader-1", [(1, values[1]), (2, values[2])])
    uncommitted = NodeLog("reader-2", [(3, values[3]), (4, b"never-committed")])
    rewritten = NodeLog("reader-3", [(0, b"overwritten-later")])

    good = check(history, final, observed=[prefix])
    bad = check(history, final, observed=[uncommitted, rewritten], foreign_ok=True)

    assert good.ok and good.observed_records == 2, good.describe()
    assert "observed=2" in good.summary()
    assert any("reader-2 saw b'never-committed' at offset 4" in v for v in bad.violations)
    assert any("nothing (it ends at 4)" in v for v in bad.violations)
    assert any("reader-3" in v and "holds b'w0-0|" in v for v in bad.violations)


def test_reads_below_the_retained_start_are_not_compared() -> None:
    history = History(Ticks())
    values = [make_value(0, i) for i in range(4)]
    sequential(history, values)
    early = NodeLog("reader", [(0, values[0]), (1, values[1]), (2, values[2])])

    report = check(history, logs_of(values[2:], start=2), start_offset=2, observed=[early])

    assert report.ok, report.describe()


def test_reader_skipping_an_offset_is_a_gap() -> None:
    history = History(Ticks())
    values = [make_value(0, i) for i in range(3)]
    sequential(history, values)
    skipping = NodeLog("reader", [(0, values[0]), (2, values[2])])

    report = check(history, logs_of(values), observed=[skipping])

    assert any("gap: reader returned offset 2 where 1 was due" in v for v in report.violations)


def test_report_serializes_to_json() -> None:
    history = History(Ticks())
    a = make_value(0, 0)
    sequential(history, [a])

    data = check(history, logs_of([])).as_dict()

    assert json.loads(json.dumps(data))["lost"] == 1
    assert data["ok"] is False


def test_check_accepts_a_plain_operation_list() -> None:
    ops = [Operation(b"x", Outcome.OK, 0, 1.0, 2.0)]

    assert check(ops, logs_of([b"x"])).ok


def test_recorder_misuse_crashes() -> None:
    history = History(Ticks())
    history.invoke(b"a")
    with pytest.raises(AssertionError, match="recorded twice"):
        history.invoke(b"a")
    with pytest.raises(AssertionError, match="never invoked"):
        history.ok(b"b", 0)
    history.unknown(b"a")
    with pytest.raises(AssertionError, match="completed twice"):
        history.ok(b"a", 0)
    with pytest.raises(AssertionError, match="at least one node"):
        check(history, [])


def test_concurrent_recorders_lose_nothing() -> None:
    history = History()

    def produce(writer: int) -> None:
        for seq in range(200):
            value = make_value(writer, seq)
            history.invoke(value)
            history.unknown(value)

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(history) == 800
    assert all(op.outcome is Outcome.UNKNOWN for op in history.operations())


def test_make_value_is_unique_and_padded() -> None:
    assert make_value(1, 23) != make_value(12, 3)
    assert len(make_value(1, 2, size_bytes=100)) == 100
    assert make_value(1, 2).startswith(b"w1-2|")


@settings(max_examples=50, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(["ok", "failed", "unknown-in", "unknown-out"]), max_size=40),
    drop=st.integers(min_value=0),
)
def test_any_correct_history_passes_and_dropping_an_acknowledged_record_fails(
    outcomes: list[str], drop: int
) -> None:
    history = History(Ticks())
    log: list[bytes] = []
    acked_positions: list[int] = []
    for seq, outcome in enumerate(outcomes):
        value = make_value(0, seq)
        history.invoke(value)
        if outcome == "ok":
            acked_positions.append(len(log))
            history.ok(value, len(log))
            log.append(value)
        elif outcome == "failed":
            history.failed(value)
        else:
            if outcome == "unknown-in":
                log.append(value)
            history.unknown(value)

    report: CheckReport = check(history, logs_of(log))
    assert report.ok, report.describe()
    assert report.unknown_present + report.unknown_absent == report.unknown

    if acked_positions:
        # Cut the log just before one acknowledged record: that one (at least) is lost.
        cut = acked_positions[drop % len(acked_positions)]
        assert check(history, logs_of(log[:cut])).lost >= 1
