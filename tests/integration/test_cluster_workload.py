"""The history-checked workload the test_cluster_* fault tests share, and its fault-free baseline.

`Workload` runs producer threads against a real StorageCluster, each recording every produce in
a `logmesh.history.History` with its outcome: acknowledged at an offset; failed only when the
error says the write was certainly not proposed (NOT_LEADER, NO_LEADER, UNAVAILABLE before
sending); unknown for everything else, deadlines and lost connections above all.
`check_cluster` waits until every node holds the same committed log, reads each node's log back
in full and runs the history checker on them. The fault tests import this module (pytest's
importlib mode does not make test files importable, hence the sys.path line in each).

Every call has a deadline and every wait a timeout; waits poll other processes' state, which
nothing can notify us of, at WAIT_POLL_S.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from logmesh._gen.log.v1 import log_pb2 as pb
from logmesh._gen.log.v1 import log_pb2_grpc
from logmesh.client import LogClient
from logmesh.cluster import StorageCluster, StorageNode
from logmesh.errors import (
    LogmeshError,
    NoLeaderError,
    NotLeaderError,
    UnavailableError,
    from_rpc_error,
)
from logmesh.history import CheckReport, History, NodeLog, Outcome, check, make_value

PRODUCE_DEADLINE_S = 2.0
BATCH_RECORDS = 10
STREAM_WINDOW = 16
STREAM_LIFETIME_S = 2.0
CLIENT_RUN_RECORDS = 500  # values per produce_many call of a ClientProducer
READ_DEADLINE_S = 30.0
CONVERGE_TIMEOUT_S = 30.0
PROGRESS_TIMEOUT_S = 30.0
WAIT_POLL_S = 0.02
# After an answer that says "no leader here", before the next attempt: an election takes a few
# hundred ms and hammering a leaderless cluster only slows it down.
NO_LEADER_BACKOFF_S = 0.05
READ_BATCH_RECORDS = 1000
CONSUME_BATCH_RECORDS = 100
CONSUME_SESSION_S = 2.0
# What a timed-out wait prints of each node's log.
DESCRIBE_LOG_LINES = 25
DESCRIBE_LINE_CHARS = 300


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, seen: Callable[[], object] = str
) -> None:
    """Return once condition() is true; fail the test after timeout_s, saying what `seen()`
    last returned."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; {seen()}")
        time.sleep(WAIT_POLL_S)


def _tail(path: Path, lines: int | None = DESCRIBE_LOG_LINES) -> list[str]:
    """The last lines of a node's log (all with None), JSON lines shortened to level, time
    and message."""
    try:
        raw = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return [f"unreadable: {e}"]
    out = []
    for line in raw[-lines:] if lines is not None else raw:
        try:
            event = json.loads(line)
            out.append(f"{event['ts'][11:23]} {event['level']} {event['msg']}".replace("\n", " | "))
        except (ValueError, KeyError, TypeError):
            out.append(line)
    return out


def _alarming(line: str) -> bool:
    """A node's log line no fault injected by these tests excuses."""
    return " critical " in line or "never retrieved" in line


def batch_request(values: Sequence[bytes]) -> pb.ProduceBatchRequest:
    return pb.ProduceBatchRequest(records=[pb.Record(value=v) for v in values])


def classify(error: grpc.RpcError) -> Outcome:
    """FAILED only when the write was certainly not proposed; otherwise UNKNOWN, never FAILED."""
    err = from_rpc_error(error, write=True)
    certainly_not_written = (NotLeaderError, NoLeaderError, UnavailableError)
    return Outcome.FAILED if isinstance(err, certainly_not_written) else Outcome.UNKNOWN


class Producer(threading.Thread):
    """Produces unique values with unary Produce, one at a time until stopped, following the
    leader. Subclasses change how a value (or several) is sent: `_attempt`."""

    def __init__(
        self, writer: int, cluster: StorageCluster, history: History, stop: threading.Event
    ) -> None:
        super().__init__(name=f"{type(self).__name__}-{writer}", daemon=True)
        self.writer = writer
        self.addresses = [n.address for n in cluster.nodes]
        self.stubs = {n.address: log_pb2_grpc.LogStub(cluster.channel(n)) for n in cluster.nodes}
        self.history = history
        self.stop_event = stop
        self.target = self.addresses[writer % len(self.addresses)]
        self.errors: dict[str, int] = {}
        self.problems: list[str] = []  # contract breaches seen by the client itself
        self._seq = itertools.count()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self._attempt()

    def _next_value(self) -> bytes:
        return make_value(self.writer, next(self._seq), size_bytes=64)

    def _attempt(self) -> None:
        value = self._next_value()
        self.history.invoke(value)
        request = pb.ProduceRequest(record=pb.Record(value=value))
        try:
            reply = self.stubs[self.target].Produce(request, timeout=PRODUCE_DEADLINE_S)
        except grpc.RpcError as e:
            self._failed([value], e, classify(e))
            return
        self.history.ok(value, int(reply.offset))

    def _failed(self, values: Sequence[bytes], error: grpc.RpcError, outcome: Outcome) -> None:
        """Record `values` with `outcome`, then pick the next target: the leader named by a
        NOT_LEADER answer, else the next node (after a short backoff if no leader is known)."""
        for value in values:
            if outcome is Outcome.FAILED:
                self.history.failed(value)
            else:
                self.history.unknown(value)
        err = from_rpc_error(error, write=True)
        self.errors[err.code] = self.errors.get(err.code, 0) + 1
        if isinstance(err, NotLeaderError) and err.leader_addr in self.stubs:
            self.target = err.leader_addr
            return
        i = self.addresses.index(self.target)
        self.target = self.addresses[(i + 1) % len(self.addresses)]
        if isinstance(err, NoLeaderError | UnavailableError | NotLeaderError):
            self.stop_event.wait(NO_LEADER_BACKOFF_S)


class BatchProducer(Producer):
    """Produces BATCH_RECORDS values per ProduceBatch call; they must get consecutive offsets."""

    def _attempt(self) -> None:
        values = [self._next_value() for _ in range(BATCH_RECORDS)]
        for value in values:
            self.history.invoke(value)
        self.history.batch(values)  # all or none of them may be in the log, whatever happens
        request = batch_request(values)
        try:
            reply = self.stubs[self.target].ProduceBatch(request, timeout=PRODUCE_DEADLINE_S)
        except grpc.RpcError as e:
            self._failed(values, e, classify(e))
            return
        if reply.count != len(values):
            self.problems.append(f"ProduceBatch of {len(values)} answered count={reply.count}")
        self.history.ok_batch(values, int(reply.first_offset))


class StreamProducer(Producer):
    """Pipelines values on one ProduceStream (STREAM_WINDOW unanswered at most) for
    STREAM_LIFETIME_S, then half-closes; answers must come in order with rising offsets.
    When a stream breaks, its unanswered values are unknown: they may have been proposed."""

    per_request = 1  # values per request

    def _request(self, values: list[bytes]) -> Any:
        return pb.ProduceRequest(record=pb.Record(value=values[0]))

    def _call(self, stub: log_pb2_grpc.LogStub, requests: Iterator[Any], timeout: float) -> Any:
        return stub.ProduceStream(requests, timeout=timeout)

    def _acked(self, values: list[bytes], reply: Any) -> int:
        """Record the answer for `values`; returns the last offset it gave."""
        self.history.ok(values[0], int(reply.offset))
        return int(reply.offset)

    def _attempt(self) -> None:
        unanswered: collections.deque[list[bytes]] = collections.deque()
        window = threading.Semaphore(STREAM_WINDOW)
        close_at = time.monotonic() + STREAM_LIFETIME_S

        def requests() -> Iterator[Any]:
            while time.monotonic() < close_at and not self.stop_event.is_set():
                if not window.acquire(timeout=WAIT_POLL_S):
                    continue
                values = [self._next_value() for _ in range(self.per_request)]
                for value in values:
                    self.history.invoke(value)
                if len(values) > 1:
                    self.history.batch(values)
                unanswered.append(values)  # before it leaves: its answer cannot come first
                yield self._request(values)

        stub = self.stubs[self.target]
        call = self._call(stub, requests(), STREAM_LIFETIME_S + PRODUCE_DEADLINE_S)
        last_offset = -1
        try:
            for reply in call:
                values = unanswered.popleft()
                previous, last_offset = last_offset, self._acked(values, reply)
                if last_offset - len(values) < previous:
                    self.problems.append(
                        f"{type(self).__name__} answered up to {last_offset} after {previous}"
                    )
                window.release()
        except grpc.RpcError as e:
            self._failed([v for values in unanswered for v in values], e, Outcome.UNKNOWN)
            return
        if unanswered:
            name = type(self).__name__
            self.problems.append(f"{name} ended OK with {len(unanswered)} unanswered")
            for values in unanswered:
                for value in values:
                    self.history.unknown(value)


class BatchStreamProducer(StreamProducer):
    """StreamProducer with BATCH_RECORDS values per request on ProduceBatchStream: each batch
    all or nothing, answers in order with consecutive offsets."""

    per_request = BATCH_RECORDS

    def _request(self, values: list[bytes]) -> Any:
        return batch_request(values)

    def _call(self, stub: log_pb2_grpc.LogStub, requests: Iterator[Any], timeout: float) -> Any:
        return stub.ProduceBatchStream(requests, timeout=timeout)

    def _acked(self, values: list[bytes], reply: Any) -> int:
        if reply.count != len(values):
            self.problems.append(f"ProduceBatchStream of {len(values)} answered {reply.count}")
        self.history.ok_batch(values, int(reply.first_offset))
        return int(reply.first_offset) + len(values) - 1


class ClientProducer(Producer):
    """Produces through logmesh.client.LogClient.produce_many (the pipelined client that sends
    again what a refusing node did not take), CLIENT_RUN_RECORDS values per call: each
    yielded offset is its value's, and no resend may write a value twice. When produce_many
    raises, the values it took and did not answer are unknown; the next call takes new ones."""

    def __init__(
        self, writer: int, cluster: StorageCluster, history: History, stop: threading.Event
    ) -> None:
        super().__init__(writer, cluster, history, stop)
        assert cluster.certs_dir is not None
        self.certs_dir = cluster.certs_dir

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        async with LogClient(
            self.addresses, self.certs_dir, "root", deadline_s=PRODUCE_DEADLINE_S
        ) as log:
            while not self.stop_event.is_set():
                await self._produce_many(log)

    async def _produce_many(self, log: LogClient) -> None:
        taken: collections.deque[bytes] = collections.deque()

        def values() -> Iterator[bytes]:
            for _ in range(CLIENT_RUN_RECORDS):
                if self.stop_event.is_set():
                    return
                value = self._next_value()
                self.history.invoke(value)
                taken.append(value)
                yield value

        try:
            async for offset in log.produce_many(values(), window=STREAM_WINDOW):
                self.history.ok(taken.popleft(), offset)
        except LogmeshError as e:
            self.errors[e.code] = self.errors.get(e.code, 0) + 1
            for value in taken:
                self.history.unknown(value)
            await asyncio.sleep(NO_LEADER_BACKOFF_S)
        else:
            if taken:
                self.problems.append(f"produce_many ended with {len(taken)} values unanswered")


class Consumer(threading.Thread):
    """Follows the tail with batched ConsumeStream, moving to the next node each time a stream
    ends (its CONSUME_SESSION_S deadline or an error) and resuming at the next offset. What it
    saw must be dense and in the final log at the same offsets: only committed records may
    ever be visible, on any node."""

    def __init__(self, reader: int, cluster: StorageCluster, stop: threading.Event) -> None:
        super().__init__(name=f"consumer-{reader}", daemon=True)
        self.reader = reader
        self.addresses = [n.address for n in cluster.nodes]
        self.stubs = {n.address: log_pb2_grpc.LogStub(cluster.channel(n)) for n in cluster.nodes}
        self.stop_event = stop
        self.records: list[tuple[int, bytes]] = []
        self.errors: dict[str, int] = {}
        self.problems: list[str] = []
        self._turn = itertools.count(reader + 1)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self._session(self.addresses[next(self._turn) % len(self.addresses)])

    def observed(self) -> NodeLog:
        return NodeLog(f"{self.name} (reads during the run)", list(self.records))

    def _session(self, address: str) -> None:
        next_offset = self.records[-1][0] + 1 if self.records else 0
        request = pb.ConsumeRequest(offset=next_offset, max_batch_records=CONSUME_BATCH_RECORDS)
        call = self.stubs[address].ConsumeStream(request, timeout=CONSUME_SESSION_S)
        try:
            for reply in call:
                self.records.extend((r.offset, r.value) for r in reply.records)
                if self.stop_event.is_set():
                    break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:  # not the session's end
                err = from_rpc_error(e)
                self.errors[err.code] = self.errors.get(err.code, 0) + 1
                self.stop_event.wait(NO_LEADER_BACKOFF_S)
        finally:
            call.cancel()


PRODUCER_KINDS: dict[str, type[Producer]] = {
    "unary": Producer,
    "batch": BatchProducer,
    "stream": StreamProducer,
    "batch-stream": BatchStreamProducer,
    "client": ClientProducer,
}


class Workload:
    """Producer threads sharing one History, one per entry of `kinds` (keys of PRODUCER_KINDS).
    Use as a context manager; leaving it stops the producers and fails on any contract breach
    a producer saw itself (a stream answering out of order, a batch miscounted)."""

    def __init__(
        self,
        cluster: StorageCluster,
        kinds: Sequence[str] = ("unary", "batch", "stream", "batch-stream", "client"),
        consumers: int = 1,
    ) -> None:
        self.history = History()
        self._cluster = cluster
        self._stop = threading.Event()
        self._threads: list[Producer | Consumer] = [
            PRODUCER_KINDS[kind](w, cluster, self.history, self._stop)
            for w, kind in enumerate(kinds)
        ]
        self._consumers = [Consumer(r, cluster, self._stop) for r in range(consumers)]
        self._threads += self._consumers

    def __enter__(self) -> Workload:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop producing and wait for the calls in flight (each has a deadline)."""
        self._stop.set()
        for t in self._threads:
            t.join(STREAM_LIFETIME_S + PRODUCE_DEADLINE_S * 5)
            assert not t.is_alive(), f"{t.name} did not stop: a call without a deadline?"
        problems = [p for t in self._threads for p in t.problems]
        assert not problems, problems

    def acknowledged(self) -> int:
        return self.history.count(Outcome.OK)

    def wait_progress(self, records: int, what: str, timeout_s: float = PROGRESS_TIMEOUT_S) -> None:
        """Wait until `records` more produces are acknowledged than now."""
        target = self.acknowledged() + records
        wait_until(
            lambda: self.acknowledged() >= target,
            timeout_s,
            f"{records} acks {what}",
            self.describe,
        )

    def wait_errors(self, calls: int, what: str, timeout_s: float = PROGRESS_TIMEOUT_S) -> None:
        """Wait until `calls` more produces have ended failed or unknown than now."""

        def not_ok() -> int:
            return self.history.count(Outcome.FAILED) + self.history.count(Outcome.UNKNOWN)

        target = not_ok() + calls
        wait_until(
            lambda: not_ok() >= target, timeout_s, f"{calls} failed calls {what}", self.describe
        )

    def describe(self) -> str:
        """What each producer and node is doing, for a timeout's message."""
        lines = [f"acknowledged {self.acknowledged()}"]
        for t in self._threads:
            if isinstance(t, Producer):
                lines.append(f"{t.name}: alive={t.is_alive()} target={t.target} errors={t.errors}")
        for node in self._cluster.nodes:
            if not node.running:
                lines.append(f"node {node.node_id}: not running")
                continue
            try:
                s = self._cluster.status(node)
            except grpc.RpcError as e:
                lines.append(f"node {node.node_id}: status failed: {e.code()}")
                continue
            lines.append(
                f"node {node.node_id}: {s.role} term={s.term} leader={s.leader_id or '-'} "
                f"commit={s.commit_index} applied={s.applied_index} last={s.last_index}"
            )
        lines.append(f"faults injected: {self._cluster.journal}")
        for node in self._cluster.nodes:
            lines.append(f"last lines of {node.process.log_path}:")
            lines += [f"  {line[:DESCRIBE_LINE_CHARS]}" for line in _tail(node.process.log_path)]
        return "\n  ".join(lines)

    def observations(self) -> list[NodeLog]:
        """What each consumer read while the workload ran."""
        return [c.observed() for c in self._consumers]

    def errors(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for t in self._threads:
            for code, n in t.errors.items():
                totals[code] = totals.get(code, 0) + n
        return totals


def committed_range(cluster: StorageCluster, node: StorageNode) -> tuple[int, int] | None:
    """(first_offset, next_offset) of node's committed records, or None if it does not answer."""
    try:
        status = cluster.status(node)
    except grpc.RpcError:
        return None
    return int(status.first_offset), int(status.next_offset)


def wait_converged(
    cluster: StorageCluster, nodes: Sequence[StorageNode], timeout_s: float = CONVERGE_TIMEOUT_S
) -> int:
    """Wait until every node in `nodes` reports the same next offset and applied all it knows
    committed; returns that next offset."""
    ends: list[int] = []

    def converged() -> bool:
        ends.clear()
        for node in nodes:
            try:
                status = cluster.status(node)
            except grpc.RpcError:
                return False
            if status.applied_index < status.commit_index or not status.leader_id:
                return False
            ends.append(int(status.next_offset))
        return len(set(ends)) == 1

    wait_until(converged, timeout_s, f"{[n.node_id for n in nodes]} to converge")
    return ends[0]


def read_node(cluster: StorageCluster, node: StorageNode) -> NodeLog:
    """Every committed record `node` holds, read through batched ConsumeStream."""
    span = committed_range(cluster, node)
    assert span is not None, f"{node.node_id} does not answer Status"
    start, end = span
    records: list[tuple[int, bytes]] = []
    if end > start:
        stub = log_pb2_grpc.LogStub(cluster.channel(node))
        request = pb.ConsumeRequest(offset=start, max_batch_records=READ_BATCH_RECORDS)
        call = stub.ConsumeStream(request, timeout=READ_DEADLINE_S)
        for reply in call:
            records.extend((r.offset, r.value) for r in reply.records if r.offset < end)
            if not reply.records or reply.records[-1].offset >= end - 1:
                break
        call.cancel()
    return NodeLog(node.node_id, records)


def check_cluster(
    cluster: StorageCluster,
    history: History,
    nodes: Sequence[StorageNode] | None = None,
    observed: Sequence[NodeLog] = (),
    *,
    retention: bool = False,
) -> CheckReport:
    """Converge, read every node back, check the history (and what readers saw during the
    run); prints the checker's summary. With `retention`, the log may start above 0: at the
    lowest offset any node returned (retention may move on while the logs are read, so no
    figure taken before the reads would do). Without `nodes`, every node must be running:
    a node that stopped itself (a broken invariant) fails the check even if the others
    went on. No node may have logged a fatal error or an unretrieved exception."""
    if nodes is None:
        stopped = [n.node_id for n in cluster.nodes if not n.running]
        assert not stopped, f"nodes stopped on their own: {stopped}; logs in {cluster.base_dir}"
        nodes = cluster.nodes
    for node in cluster.nodes:
        bad = [line for line in _tail(node.process.log_path, lines=None) if _alarming(line)]
        assert not bad, f"{node.node_id} logged: {bad[:5]}"
    wait_converged(cluster, nodes)
    logs = [read_node(cluster, n) for n in nodes]
    start_offset = 0
    if retention:
        start_offset = min(
            (log.start_offset for log in logs if log.start_offset is not None), default=0
        )
    report = check(history, logs, start_offset=start_offset, observed=observed)
    print(f"\n{report.summary()}")
    return report


def test_fault_free_workload_acknowledges_everything_and_passes_the_checker(
    make_storage_cluster: Callable[..., StorageCluster],
) -> None:
    cluster = make_storage_cluster()
    with Workload(cluster) as workload:
        workload.wait_progress(300, "on a healthy cluster")

    report = check_cluster(cluster, workload.history, observed=workload.observations())

    report.assert_ok()
    assert report.acknowledged >= 300
    assert report.observed_records > 0
    # Producers start on any node: a follower's NOT_LEADER is the only error a healthy cluster
    # may give, and nothing it refused may have been written (a refused stream's values count
    # as unknown, so they must all be absent).
    assert set(workload.errors()) <= {"NOT_LEADER"}, workload.errors()
    assert report.unknown_present == 0
    assert report.committed_records == report.acknowledged
    assert all(span == (0, report.committed_records) for span in report.node_ranges.values())
