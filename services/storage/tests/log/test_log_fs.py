"""The FileSystem seam: the real one on tmp_path, and the crash model of the twin."""

from __future__ import annotations

import errno
import random
from pathlib import Path

import pytest
from logmesh_storage.log import MemoryFileSystem, OsFileSystem
from logmesh_storage.log.fs import CRASH_GARBLE_BYTES_MAX


@pytest.mark.parametrize("kind", ["os", "memory"])
def test_file_system_basic_operations(kind: str, tmp_path: Path) -> None:
    fs = OsFileSystem() if kind == "os" else MemoryFileSystem()
    directory = f"{tmp_path}/d" if kind == "os" else "/d"
    fs.make_dirs(directory)
    handle = fs.open(f"{directory}/a", create=True)
    handle.append(b"hello ")
    handle.append(b"world")
    handle.sync()
    assert handle.size() == 11
    assert handle.pread(6, 100) == b"world"
    handle.truncate(5)
    assert handle.size() == 5
    handle.close()
    fs.rename(f"{directory}/a", f"{directory}/b")
    fs.sync_dir(directory)
    assert fs.list_dir(directory) == ["b"]
    assert fs.open(f"{directory}/b", create=False).pread(0, 100) == b"hello"
    with pytest.raises(FileNotFoundError):
        fs.open(f"{directory}/missing", create=False)
    fs.remove(f"{directory}/b")
    assert fs.list_dir(directory) == []


def test_crash_keeps_synced_bytes_and_a_prefix_of_the_rest() -> None:
    for seed in range(50):
        fs = MemoryFileSystem()
        fs.make_dirs("/d")
        handle = fs.open("/d/f", create=True)
        fs.sync_dir("/d")
        handle.append(b"A" * 100)
        handle.sync()
        handle.append(b"B" * 200)
        fs.crash(random.Random(seed))
        data = fs.read_bytes("/d/f")
        assert data[:100] == b"A" * 100
        assert len(data) <= 300
        # Only the last few surviving bytes may differ from what was written.
        intact = data[: max(100, len(data) - CRASH_GARBLE_BYTES_MAX)]
        assert intact == (b"A" * 100 + b"B" * 200)[: len(intact)]


def test_crash_tears_a_rewrite_in_place_like_an_append() -> None:
    """A file truncated and rewritten without a sync may come back as the old synced bytes
    or as the new contents cut anywhere after what both share, never as something else:
    a state file rewritten in place is not atomic."""
    outcomes = set()
    for seed in range(200):
        fs = MemoryFileSystem()
        fs.make_dirs("/d")
        handle = fs.open("/d/f", create=True)
        fs.sync_dir("/d")
        handle.append(b"keep" + b"old" * 10)
        handle.sync()
        handle.truncate(4)
        handle.append(b"new" * 10)
        fs.crash(random.Random(seed))
        data = fs.read_bytes("/d/f")
        new = b"keep" + b"new" * 10
        assert data == b"keep" + b"old" * 10 or (new.startswith(data) and len(data) >= 4)
        outcomes.add("old" if b"old" in data else "whole" if data == new else "torn")
    assert outcomes == {"old", "whole", "torn"}


def test_crash_may_lose_a_file_whose_creation_was_not_synced() -> None:
    survived = set()
    for seed in range(20):
        fs = MemoryFileSystem()
        fs.make_dirs("/d")
        fs.open("/d/f", create=True).sync()
        fs.crash(random.Random(seed))
        survived.add(fs.list_dir("/d") == ["f"])
    assert survived == {True, False}


def test_handles_die_with_a_crash() -> None:
    fs = MemoryFileSystem()
    fs.make_dirs("/d")
    handle = fs.open("/d/f", create=True)
    fs.crash(random.Random(0))
    with pytest.raises(AssertionError, match="after a simulated crash"):
        handle.size()


def test_capacity_gives_enospc_after_a_partial_write() -> None:
    fs = MemoryFileSystem(capacity_bytes=10)
    fs.make_dirs("/d")
    handle = fs.open("/d/f", create=True)
    with pytest.raises(OSError) as error:
        handle.append(b"x" * 15)
    assert error.value.errno == errno.ENOSPC
    assert handle.size() == 10


def test_sync_budget_fails_later_syncs() -> None:
    fs = MemoryFileSystem()
    fs.make_dirs("/d")
    handle = fs.open("/d/f", create=True)
    fs.syncs_until_failure = 1
    handle.sync()
    with pytest.raises(OSError) as error:
        fs.sync_dir("/d")
    assert error.value.errno == errno.EIO
