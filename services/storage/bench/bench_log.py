"""Benchmark of the log engine (not a test): `make bench-log`, JSON lines on stdout.

Append throughput for 100 B and 1 KiB records at batch sizes 1, 16 and 256 with an
fsync per batch, each next to the raw limit of this disk measured in the same run (a
plain loop writing the same frame bytes with the same fsync cadence), as a ratio:
`append` from Entry objects (encoding included) and `append_encoded` from batches
encoded beforehand (the node's path: encode once, ship and write the same bytes).
Read throughput (sequential by index, random by offset) against a raw pread loop,
and random read_offset latency with 1 and with 100 segments (O(log n), no scan).

Usage: .venv/bin/python services/storage/bench/bench_log.py [--out FILE] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from logmesh_storage.log import (
    EncodedBatch,
    Entry,
    EntryType,
    Log,
    LogConfig,
    OsFileSystem,
    encode_batch,
    encode_entry,
)

REPEATS = 5
SEGMENT_BYTES_MAX = 64 * 1024 * 1024


def make_records(count: int, record_bytes: int) -> list[Entry]:
    payload = random.Random(7).randbytes(record_bytes)
    return [
        Entry(i + 1, 1, EntryType.DATA, i, 1_700_000_000_000 + i, payload) for i in range(count)
    ]


def records_for(record_bytes: int, batch: int) -> int:
    """Enough records for a measurement of roughly half a second on this machine."""
    batches = {1: 600, 16: 300, 256: 100 if record_bytes > 500 else 150}[batch]
    return batches * batch


def fresh(root: str, name: str) -> str:
    path = f"{root}/{name}"
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def median_of(measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(REPEATS))


def time_appends(
    root: str, batches: Sequence[Sequence[Entry] | EncodedBatch], buffers: list[bytes]
) -> list[tuple[float, float]]:
    """Per batch: seconds in Log.append, and in the raw write+fdatasync of the same bytes.

    The two alternate batch by batch, so both see the same disk and CPU weather (the
    machine is shared and its fsync latency drifts by a factor of several)."""
    directory = fresh(root, "append")
    log = Log.open(OsFileSystem(), directory, LogConfig(segment_bytes_max=SEGMENT_BYTES_MAX))
    fd = os.open(f"{directory}/raw", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    pairs = []
    for batch, buffer in zip(batches, buffers, strict=True):
        start = time.perf_counter()
        log.append(batch)
        middle = time.perf_counter()
        os.write(fd, buffer)
        os.fdatasync(fd)
        pairs.append((middle - start, time.perf_counter() - middle))
    os.close(fd)
    log.close()
    return pairs


def bench_append(root: str, record_bytes: int, batch: int) -> list[dict[str, Any]]:
    records = make_records(records_for(record_bytes, batch), record_bytes)
    batches = [records[i : i + batch] for i in range(0, len(records), batch)]
    buffers = [b"".join(encode_entry(e) for e in b) for b in batches]
    shape = {"record_bytes": record_bytes, "batch": batch, "records": len(records)}
    encoded: list[EncodedBatch] = [encode_batch(b) for b in batches]
    return [
        {"bench": "append", **shape, **append_figures(root, batches, buffers)},
        # The node's path (DESIGN §9): the leader encodes a batch once, ships those bytes
        # and appends them; a follower appends what it received after decode_batch.
        {"bench": "append_encoded", **shape, **append_figures(root, encoded, buffers)},
    ]


def append_figures(
    root: str, batches: Sequence[Sequence[Entry] | EncodedBatch], buffers: list[bytes]
) -> dict[str, Any]:
    """Throughputs (median run) and two ratios: of total times (median over runs), and
    the median over all back-to-back batch pairs (robust to scheduling hiccups of a
    shared machine)."""
    records = sum(len(b) for b in batches)
    runs = [time_appends(root, batches, buffers) for _ in range(REPEATS)]
    totals = [(sum(log for log, _ in run), sum(raw for _, raw in run)) for run in runs]
    log_s = statistics.median(log for log, _ in totals)
    raw_s = statistics.median(raw for _, raw in totals)
    pair_ratios = [raw / log for run in runs for log, raw in run]
    return {
        "records_per_s": round(records / log_s),
        "raw_records_per_s": round(records / raw_s),
        "ratio": round(statistics.median(raw / log for log, raw in totals), 3),
        "ratio_median_pair": round(statistics.median(pair_ratios), 3),
    }


def build_log(directory: str, count: int, record_bytes: int, segment_bytes_max: int) -> Log:
    log = Log.open(OsFileSystem(), directory, LogConfig(segment_bytes_max=segment_bytes_max))
    records = make_records(count, record_bytes)
    for i in range(0, count, 1000):
        log.append(records[i : i + 1000])
    return log


def bench_read_sequential(root: str, count: int, record_bytes: int) -> dict[str, Any]:
    log = build_log(fresh(root, "read"), count, record_bytes, SEGMENT_BYTES_MAX)

    def read_log() -> float:
        start = time.perf_counter()
        for lo in range(1, count + 1, 1000):
            log.entries(lo, min(lo + 1000, count + 1))
        return time.perf_counter() - start

    segment = log.segment_paths[0]
    frame_bytes = len(encode_entry(make_records(1, record_bytes)[0]))

    def read_raw() -> float:
        fd = os.open(segment, os.O_RDONLY)
        start = time.perf_counter()
        for position in range(0, count * frame_bytes, 1000 * frame_bytes):
            os.pread(fd, 1000 * frame_bytes, position)
        elapsed = time.perf_counter() - start
        os.close(fd)
        return elapsed

    log_rate, raw_rate = count / median_of(read_log), count / median_of(read_raw)
    log.close()
    return {
        "bench": "read_sequential",
        "record_bytes": record_bytes,
        "page_records": 1000,
        "records_per_s": round(log_rate),
        "raw_records_per_s": round(raw_rate),
        "ratio": round(log_rate / raw_rate, 3),
    }


def read_offset_latency_us(log: Log, count: int, lookups: int) -> float:
    offsets = random.Random(3).choices(range(count), k=lookups)
    start = time.perf_counter()
    for offset in offsets:
        log.read_offset(offset)
    return (time.perf_counter() - start) / lookups * 1e6


def bench_read_offset(root: str, count: int, record_bytes: int) -> list[dict[str, Any]]:
    total_bytes = count * len(encode_entry(make_records(1, record_bytes)[0]))
    results = []
    one = build_log(fresh(root, "one"), count, record_bytes, SEGMENT_BYTES_MAX)
    many = build_log(fresh(root, "many"), count, record_bytes, total_bytes // 100)
    one_us = median_of(lambda: read_offset_latency_us(one, count, 20_000))
    many_us = median_of(lambda: read_offset_latency_us(many, count, 20_000))
    fd = os.open(one.segment_paths[0], os.O_RDONLY)
    frame_bytes = total_bytes // count
    positions = random.Random(3).choices(range(count), k=20_000)

    def raw_pread() -> float:
        start = time.perf_counter()
        for i in positions:
            os.pread(fd, frame_bytes, i * frame_bytes)
        return (time.perf_counter() - start) / len(positions) * 1e6

    raw_us = median_of(raw_pread)
    os.close(fd)
    for log, us in ((one, one_us), (many, many_us)):
        results.append(
            {
                "bench": "read_offset_random",
                "record_bytes": record_bytes,
                "records": count,
                "segments": len(log.segment_paths),
                "us_per_read": round(us, 2),
                "raw_us_per_pread": round(raw_us, 2),
                "ratio": round(raw_us / us, 3),
                "vs_one_segment": round(us / one_us, 3),
            }
        )
        log.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also append the JSON lines to this file")
    parser.add_argument("--dir", help="where to write (default: a temporary directory)")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="bench-log-", dir=args.dir)
    out = open(args.out, "a") if args.out else None  # noqa: SIM115
    try:
        for line in run(root):
            # The machine is shared: the load says how much to trust a CPU-bound ratio.
            text = json.dumps({**line, "loadavg_1m": round(os.getloadavg()[0], 2)})
            print(text, flush=True)
            if out:
                out.write(text + "\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if out:
            out.close()


def run(root: str) -> Any:
    for record_bytes in (100, 1024):
        for batch in (1, 16, 256):
            yield from bench_append(root, record_bytes, batch)
    yield bench_read_sequential(root, 200_000, 100)
    yield from bench_read_offset(root, 200_000, 100)


if __name__ == "__main__":
    main()
