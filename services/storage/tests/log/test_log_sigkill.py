"""Real files: a child appending in a loop is SIGKILLed, its tail is cut at a random
point past the last fsync it reported, and the log reopens to a valid prefix that holds
everything reported durable."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from logmesh_storage.log import Log, LogConfig, OsFileSystem

CONFIG = LogConfig(segment_bytes_max=64 * 1024)
REPORTS_BEFORE_KILL = 150

CHILD = """
import sys
from logmesh_storage.log import Entry, EntryType, Log, LogConfig, OsFileSystem

log = Log.open(OsFileSystem(), sys.argv[1], LogConfig(segment_bytes_max=64 * 1024))
index, offset = log.last_index, log.next_offset
while True:
    batch = []
    for _ in range(1 + index % 7):
        index += 1
        type_ = EntryType.NOOP if index % 11 == 0 else EntryType.DATA
        payload = b"" if type_ is EntryType.NOOP else bytes([index % 256]) * (index % 300)
        entry = Entry(index, 1 + index // 500, type_, offset, index, payload)
        batch.append(entry)
        offset = entry.next_offset
    log.append(batch)
    segment = log.segment_paths[-1]
    print(index, segment, log.active_segment_bytes, flush=True)
"""


def run_and_kill(directory: Path, script: Path) -> tuple[int, str, int]:
    child = subprocess.Popen(
        [sys.executable, str(script), str(directory)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    last = ""
    for _ in range(REPORTS_BEFORE_KILL):
        last = child.stdout.readline()
        assert last, "the child stopped before it was killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    index, segment, size = last.split()
    return int(index), segment, int(size)


def cut_after_last_fsync(
    segment: str, synced_bytes: int, directory: Path, rng: random.Random
) -> None:
    """Cut the newest segment at a random point past what the child reported durable."""
    newest = max(directory.glob("*.seg"))
    floor = synced_bytes if str(newest) == segment else 0
    size = newest.stat().st_size
    os.truncate(newest, rng.randint(min(floor, size), size))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkilled_writer_reopens_to_a_valid_prefix(tmp_path: Path, seed: int) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    directory = tmp_path / "log"
    rng = random.Random(seed)
    durable_index = 0
    for _ in range(2):  # kill, cut, reopen, and again on the recovered log
        durable_index, segment, synced_bytes = run_and_kill(directory, script)
        cut_after_last_fsync(segment, synced_bytes, directory, rng)
        log = Log.open(OsFileSystem(), str(directory), CONFIG)
        assert log.last_index >= durable_index
        entries = log.entries(1, log.last_index + 1)
        offset = 0
        for position, entry in enumerate(entries, start=1):
            assert entry.index == position
            assert entry.offset == offset
            assert entry.timestamp_ms == entry.index
            expected = (
                b"" if entry.index % 11 == 0 else bytes([entry.index % 256]) * (entry.index % 300)
            )
            assert entry.payload == expected
            offset = entry.next_offset
        assert log.next_offset == offset
        log.close()
    assert len(list(directory.glob("*.seg"))) > 1, "the test should cover segment rolls"
