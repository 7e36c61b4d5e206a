"""The cluster benchmark (`make bench`): a 3-node logmesh cluster on loopback, one JSON line each.

    bench_cluster.py --out bench-results/cluster.jsonl [--tests seq,conc,stream,batch,read]
                     [--via unary,stream]

The load shape is the peer harness's (`../shared/bench/README.md`), so figures compare:
  seq     2000 single Produce calls of 100 B, one in flight: appends/s, latency percentiles
  conc    closed loop of 16 and 64 callers x 100 B and 1 KiB values, 1 s warm-up, 10 s window
  stream  one ProduceStream with up to --stream-window requests unanswered, 100 B, 10 s
  batch   ProduceBatch of 100 x 100 B, 4 in flight, 10 s: records/s
  read    the last 200k records, oldest first, ConsumeStream with max_batch_records=1000
seq, conc and batch run once per --via: `unary` (one Produce / ProduceBatch call per write) and
`stream` (each caller keeps its own ProduceStream / ProduceBatchStream, one request in flight);
each line says which in "via".
Each line carries the CPU used by this client and by the three nodes (cores, averaged over the
measurement) and the machine's stolen time: client and servers share this machine's 2 cores.
The calls go through `peer_driver/logmesh_driver.py`, the driver the peer comparison uses.

A benchmark, never a test: it asserts nothing about speed. Every loop stops at a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "peer_driver"))

from logmesh_driver import (  # a sibling folder, not a package
    LogmeshDriver,
    LogmeshStreamDriver,
)

from logmesh.cluster import StorageCluster

_CLOCK_TICKS_S = os.sysconf("SC_CLK_TCK")
_ERRORS_MAX = 200


# ---- measuring -------------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds of this process and of the server pids, and the machine's steal, between two
    snapshots, as average cores."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)

    def snap(self) -> tuple[float, float, float, int, int]:
        t = os.times()
        servers = sum(_process_cpu_s(pid) for pid in self.pids)
        total, steal = _machine_ticks()
        return time.perf_counter(), t.user + t.system, servers, total, steal

    def delta(self, a: tuple[float, ...], b: tuple[float, ...]) -> dict[str, float]:
        wall_s = max(b[0] - a[0], 1e-9)
        ticks = max(b[3] - a[3], 1)
        ncpu = os.cpu_count() or 1
        return {
            "client_cores": round((b[1] - a[1]) / wall_s, 3),
            "servers_cores": round((b[2] - a[2]) / wall_s, 3),
            "steal_cores": round((b[4] - a[4]) / ticks * ncpu, 3),
        }


def _process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS_S  # utime + stime


def _machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:9]]
    return sum(values), values[7]


def percentiles_ms(latencies_s: Sequence[float]) -> dict[str, float] | None:
    if not latencies_s:
        return None
    s = sorted(latencies_s)

    def at(p: float) -> float:
        return round(s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] * 1000, 3)

    return {"p50": at(50), "p90": at(90), "p99": at(99), "max": at(100), "n": len(s)}


async def closed_loop(
    op: Callable[[], Awaitable[int]], callers: int, args: argparse.Namespace, meter: CpuMeter
) -> dict[str, Any]:
    """`callers` tasks calling op() back to back; counts what finished inside the window."""
    measure_from = time.perf_counter() + args.warmup
    deadline = measure_from + args.window
    latencies: list[float] = []
    errors: list[str] = []
    done = 0
    snaps: list[tuple[float, ...]] = []

    async def caller() -> None:
        nonlocal done
        while (t0 := time.perf_counter()) < deadline and len(errors) < _ERRORS_MAX:
            try:
                n = await op()
            except Exception as e:  # a failed call is reported, the loop goes on
                errors.append(repr(e))
                continue
            if t0 >= measure_from:
                latencies.append(time.perf_counter() - t0)
                done += n

    async def mark_start() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        snaps.append(meter.snap())

    await asyncio.gather(mark_start(), *(caller() for _ in range(callers)))
    end = meter.snap()
    wall_s = end[0] - snaps[0][0]
    return {
        "ops": done,
        "seconds": round(wall_s, 3),
        "ops_per_s": round(done / wall_s, 1),
        "lat_ms": percentiles_ms(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "cpu": meter.delta(snaps[0], end),
    }


# ---- the shapes ------------------------------------------------------------------------------


async def t_seq(drv: LogmeshDriver, args: argparse.Namespace, meter: CpuMeter) -> dict[str, Any]:
    value = os.urandom(100)
    latencies: list[float] = []
    deadline = time.perf_counter() + args.seq_max_time
    a = meter.snap()
    for _ in range(args.seq_n):
        t0 = time.perf_counter()
        if t0 > deadline:
            break
        await drv.append(value)
        latencies.append(time.perf_counter() - t0)
    b = meter.snap()
    wall_s = b[0] - a[0]
    return {
        "test": "seq",
        "value_bytes": 100,
        "concurrency": 1,
        "ops": len(latencies),
        "seconds": round(wall_s, 3),
        "ops_per_s": round(len(latencies) / wall_s, 1),
        "lat_ms": percentiles_ms(latencies),
        "cpu": meter.delta(a, b),
    }


async def t_conc(
    drv: LogmeshDriver, args: argparse.Namespace, meter: CpuMeter, callers: int, size: int
) -> dict[str, Any]:
    value = os.urandom(size)

    async def op() -> int:
        await drv.append(value)
        return 1

    result = await closed_loop(op, callers, args, meter)
    return {"test": "conc", "value_bytes": size, "concurrency": callers, **result}


async def t_stream(drv: LogmeshDriver, args: argparse.Namespace, meter: CpuMeter) -> dict[str, Any]:
    measure_from = time.perf_counter() + args.warmup
    deadline = measure_from + args.window
    run = asyncio.ensure_future(
        drv.stream_window(os.urandom(100), args.stream_window, deadline, measure_from)
    )
    await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
    a = meter.snap()
    answered, latencies = await run
    b = meter.snap()
    wall_s = min(b[0], deadline) - a[0]
    return {
        "test": "stream",
        "value_bytes": 100,
        "window": args.stream_window,
        "ops": answered,
        "seconds": round(wall_s, 3),
        "ops_per_s": round(answered / wall_s, 1),
        "lat_ms": percentiles_ms(latencies),
        "cpu": meter.delta(a, b),
    }


async def t_batch(drv: LogmeshDriver, args: argparse.Namespace, meter: CpuMeter) -> dict[str, Any]:
    values = [os.urandom(args.batch_value)] * args.batch_size

    async def op() -> int:
        await drv.append_batch(values)
        return len(values)

    result = await closed_loop(op, args.batch_inflight, args, meter)
    result["lat_ms_per_batch"] = result.pop("lat_ms")
    return {
        "test": "batch",
        "batch_mode": drv.batch_mode,
        "value_bytes": args.batch_value,
        "batch": args.batch_size,
        "concurrency": args.batch_inflight,
        **result,
    }


async def t_read(drv: LogmeshDriver, args: argparse.Namespace, meter: CpuMeter) -> dict[str, Any]:
    a = meter.snap()
    records, nbytes = await drv.read_pages(1000, args.read_max, a[0] + args.read_time)
    b = meter.snap()
    wall_s = b[0] - a[0]
    return {
        "test": "read",
        "read_mode": drv.read_mode,
        "records": records,
        "bytes": nbytes,
        "seconds": round(wall_s, 3),
        "records_per_s": round(records / wall_s, 1),
        "cpu": meter.delta(a, b),
    }


# ---- main ------------------------------------------------------------------------------------


async def run_all(cluster: StorageCluster, args: argparse.Namespace) -> None:
    leader = cluster.leader()
    info = {"leader": leader.address, "certs_dir": str(cluster.certs_dir), "identity": "root"}
    drivers: dict[str, LogmeshDriver] = {"unary": LogmeshDriver(), "stream": LogmeshStreamDriver()}
    for drv in drivers.values():
        await drv.open(info, argparse.Namespace(target=None))
    meter = CpuMeter([pid for n in cluster.nodes if (pid := n.process.pid) is not None])
    common = {"system": "logmesh", "target": leader.address, "nodes": len(cluster.nodes)}
    try:
        for shape, vias in _shapes(args):
            for via in vias:
                result = await shape(drivers[via], args, meter)
                record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S"), **common, **result}
                if len(vias) > 1 or via != "unary":
                    record["via"] = via
                _emit(record, args.out)
    finally:
        for drv in drivers.values():
            await drv.close()


Shape = Callable[[LogmeshDriver, argparse.Namespace, CpuMeter], Awaitable[dict[str, Any]]]


def _shapes(args: argparse.Namespace) -> list[tuple[Shape, list[str]]]:
    """The measurements --tests asks for, in order (conc expands to callers x sizes), each with
    the drivers to run it with (seq, conc and batch: each of --via)."""
    vias = [v for v in args.via.split(",") if v]
    if not vias or set(vias) - {"unary", "stream"}:
        raise SystemExit(f"--via {args.via!r}: use unary, stream or unary,stream")
    simple: dict[str, Shape] = {"seq": t_seq, "batch": t_batch}
    once: dict[str, Shape] = {"stream": t_stream, "read": t_read}
    shapes: list[tuple[Shape, list[str]]] = []
    for test in args.tests.split(","):
        if test == "conc":
            shapes += [
                (functools.partial(t_conc, callers=callers, size=size), vias)
                for size in _ints(args.sizes)
                for callers in _ints(args.conc)
            ]
        elif test in simple:
            shapes.append((simple[test], vias))
        elif test in once:
            shapes.append((once[test], ["unary"]))
        else:
            raise SystemExit(f"unknown test {test!r}: use seq, conc, stream, batch, read")
    return shapes


def _ints(csv: str) -> list[int]:
    return [int(x) for x in csv.split(",") if x]


def _emit(record: dict[str, Any], out: Path | None) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    if out is not None:
        with open(out, "a") as f:
            f.write(line + "\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--out", type=Path, help="append the JSON lines here too")
    p.add_argument("--tests", default="seq,conc,stream,batch,read")
    p.add_argument(
        "--via", default="unary,stream", help="how seq, conc and batch write: unary, stream, both"
    )
    p.add_argument("--window", type=float, default=10.0, help="seconds measured per shape")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--seq-n", type=int, default=2000)
    p.add_argument("--seq-max-time", type=float, default=60.0)
    p.add_argument("--conc", default="16,64")
    p.add_argument("--sizes", default="100,1024")
    p.add_argument("--stream-window", type=int, default=256, help="unanswered requests at most")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--batch-value", type=int, default=100)
    p.add_argument("--batch-inflight", type=int, default=4)
    p.add_argument("--read-max", type=int, default=200_000)
    p.add_argument("--read-time", type=float, default=20.0)
    p.add_argument("--dir", type=Path, help="keep the cluster's data and logs here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="logmesh-bench-") as tmp:
        base_dir = args.dir or Path(tmp)
        with StorageCluster(base_dir, size=3) as cluster:
            asyncio.run(run_all(cluster, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
