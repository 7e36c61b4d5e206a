"""The file-system seam of the log engine, and its two implementations.

`FileSystem` and `File` are the only way the engine touches storage. `OsFileSystem`
is the real one and the only code in this package allowed to import `os`.
`MemoryFileSystem` is its in-memory twin for tests: it remembers what was synced
(file contents by `File.sync`, directory entries by `FileSystem.sync_dir`) and
`crash(rng)` replaces the state with one a real disk could show after power loss.
Nothing here knows about frames, segments or entries.
"""

from __future__ import annotations

import errno
import os
import random
from dataclasses import dataclass, field
from typing import Protocol

# A crash garbles at most this many bytes at the end of a file's surviving unsynced
# tail: it models the last, partially written sector (the "last partial frame").
CRASH_GARBLE_BYTES_MAX = 64


class File(Protocol):
    """An open file: appends at its end, reads at any position."""

    def size(self) -> int:
        """The file's current length in bytes."""
        ...

    def append(self, data: bytes) -> None:
        """Write all of `data` at the end with one write call. Raises OSError on failure
        (ENOSPC included); then a prefix of `data` may have been written."""
        ...

    def pread(self, position: int, size: int) -> bytes:
        """Up to `size` bytes from `position` (fewer only at the end of the file)."""
        ...

    def sync(self) -> None:
        """Make the contents durable (fdatasync). Raises OSError on failure."""
        ...

    def truncate(self, size: int) -> None:
        """Cut the file to `size` bytes (not durable until `sync`)."""
        ...

    def close(self) -> None: ...


class FileSystem(Protocol):
    """Directory operations. Paths are plain strings joined with '/'."""

    def make_dirs(self, directory: str) -> None: ...

    def list_dir(self, directory: str) -> list[str]:
        """The names (not paths) in `directory`, sorted."""
        ...

    def open(self, path: str, *, create: bool) -> File:
        """Open for read and append; `create` makes a missing file (not durable
        until `sync_dir` of its directory). Raises FileNotFoundError otherwise."""
        ...

    def remove(self, path: str) -> None: ...

    def rename(self, source: str, target: str) -> None:
        """Atomically replace `target` with `source` (durable after `sync_dir`)."""
        ...

    def sync_dir(self, directory: str) -> None:
        """Make creations, removals and renames in `directory` durable."""
        ...


class OsFile:
    """A real file opened O_APPEND; its size is tracked here to spare an fstat per call."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._size = os.fstat(fd).st_size

    def size(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            # A short write happens only near ENOSPC; the next call then raises it.
            written = os.write(self._fd, view)
            self._size += written
            view = view[written:]

    def pread(self, position: int, size: int) -> bytes:
        return os.pread(self._fd, size, position)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        self._size = size

    def close(self) -> None:
        os.close(self._fd)


class OsFileSystem:
    """The real file system."""

    def make_dirs(self, directory: str) -> None:
        os.makedirs(directory, exist_ok=True)

    def list_dir(self, directory: str) -> list[str]:
        return sorted(os.listdir(directory))

    def open(self, path: str, *, create: bool) -> File:
        flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
        return OsFile(os.open(path, flags, 0o644))

    def remove(self, path: str) -> None:
        os.remove(path)

    def rename(self, source: str, target: str) -> None:
        os.replace(source, target)

    def sync_dir(self, directory: str) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(eq=False)
class _Inode:
    data: bytearray = field(default_factory=bytearray)
    synced: bytes = b""


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


class _MemoryFile:
    def __init__(self, fs: MemoryFileSystem, inode: _Inode) -> None:
        self._fs = fs
        self._inode = inode
        self._epoch = fs.epoch

    def _check(self) -> _Inode:
        # A handle from before a crash belongs to a dead process: using it is a test bug.
        assert self._epoch == self._fs.epoch, "file handle used after a simulated crash"
        return self._inode

    def size(self) -> int:
        return len(self._check().data)

    def append(self, data: bytes) -> None:
        inode = self._check()
        if self._fs.write_errno is not None:
            raise OSError(self._fs.write_errno, "simulated write failure")
        room = self._fs.room_bytes()
        inode.data += data[:room]
        if room < len(data):
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    def pread(self, position: int, size: int) -> bytes:
        return bytes(self._check().data[position : position + size])

    def sync(self) -> None:
        inode = self._check()
        self._fs.spend_sync()
        inode.synced = bytes(inode.data)

    def truncate(self, size: int) -> None:
        del self._check().data[size:]

    def close(self) -> None:
        self._check()


class MemoryFileSystem:
    """An in-memory file system that can simulate a crash.

    capacity_bytes: total bytes over all files before appends fail with ENOSPC.
    syncs_until_failure: when set, that many more syncs (of files or directories)
        succeed and every later one raises EIO: a failing disk, or a crash point.
    write_errno: when set, every File.append raises OSError with this errno.
    """

    def __init__(self, capacity_bytes: int | None = None) -> None:
        self.capacity_bytes = capacity_bytes
        self.syncs_until_failure: int | None = None
        self.write_errno: int | None = None
        self.epoch = 0
        self._files: dict[str, _Inode] = {}
        self._durable_names: dict[str, _Inode] = {}
        self._dirs: set[str] = set()

    def room_bytes(self) -> int:
        if self.capacity_bytes is None:
            return 1 << 62
        used = sum(len(inode.data) for inode in self._files.values())
        return max(0, self.capacity_bytes - used)

    def spend_sync(self) -> None:
        if self.syncs_until_failure is None:
            return
        if self.syncs_until_failure <= 0:
            raise OSError(errno.EIO, "Input/output error (simulated sync failure)")
        self.syncs_until_failure -= 1

    def make_dirs(self, directory: str) -> None:
        self._dirs.add(directory)

    def list_dir(self, directory: str) -> list[str]:
        if directory not in self._dirs:
            raise FileNotFoundError(directory)
        return sorted(p.rpartition("/")[2] for p in self._files if _parent(p) == directory)

    def open(self, path: str, *, create: bool) -> File:
        if _parent(path) not in self._dirs:
            raise FileNotFoundError(path)
        if path not in self._files:
            if not create:
                raise FileNotFoundError(path)
            self._files[path] = _Inode()
        return _MemoryFile(self, self._files[path])

    def remove(self, path: str) -> None:
        if path not in self._files:
            raise FileNotFoundError(path)
        del self._files[path]

    def rename(self, source: str, target: str) -> None:
        self._files[target] = self._files.pop(source)

    def sync_dir(self, directory: str) -> None:
        self.spend_sync()
        for path in [p for p in self._durable_names if _parent(p) == directory]:
            del self._durable_names[path]
        for path, inode in self._files.items():
            if _parent(path) == directory:
                self._durable_names[path] = inode

    # -- test helpers ----------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        return bytes(self._files[path].data)

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace a file's contents, durably (for tests that damage files)."""
        inode = self._files.setdefault(path, _Inode())
        inode.data = bytearray(data)
        inode.synced = bytes(data)
        self._durable_names[path] = inode

    def crash(self, rng: random.Random) -> None:
        """Lose what a power cut may lose; every open handle becomes unusable.

        Directory entries not made durable by sync_dir may or may not survive.
        A file keeps its synced bytes, plus a random prefix of an unsynced appended
        tail whose last few bytes may be garbled. A file truncated since its last
        sync shows either its synced contents or the truncation.
        """
        self.epoch += 1
        survivors: dict[str, _Inode] = {}
        for path in sorted(set(self._files) | set(self._durable_names)):
            inode = self._surviving_inode(path, rng)
            if inode is not None:
                _crash_contents(inode, rng)
                survivors[path] = inode
        self._files = survivors
        self._durable_names = dict(survivors)

    def _surviving_inode(self, path: str, rng: random.Random) -> _Inode | None:
        current = self._files.get(path)
        durable = self._durable_names.get(path)
        if current is durable or current is None or durable is None:
            if current is durable or rng.random() < 0.5:
                return current if current is not None else durable
            return None
        return current if rng.random() < 0.5 else durable


def _crash_contents(inode: _Inode, rng: random.Random) -> None:
    data, synced = bytes(inode.data), inode.synced
    if data.startswith(synced):
        kept = synced + data[len(synced) : rng.randint(len(synced), len(data))]
        unsynced_kept = len(kept) - len(synced)
        if unsynced_kept and rng.random() < 0.5:
            kept = _garble_tail(
                kept, rng.randint(1, min(unsynced_kept, CRASH_GARBLE_BYTES_MAX)), rng
            )
    else:
        # Truncated and rewritten since the last sync: the disk may hold the old synced bytes,
        # or the new contents cut anywhere after what both share (a rewrite in place is torn
        # like an append; only temp file + sync + rename makes it atomic).
        shared = _shared_prefix_bytes(synced, data)
        kept = synced if rng.random() < 0.5 else data[: rng.randint(shared, len(data))]
    inode.data = bytearray(kept)
    inode.synced = kept


def _shared_prefix_bytes(a: bytes, b: bytes) -> int:
    size = min(len(a), len(b))
    return next((i for i in range(size) if a[i] != b[i]), size)


def _garble_tail(data: bytes, count: int, rng: random.Random) -> bytes:
    tail = bytes(b ^ rng.randint(1, 255) for b in data[-count:])
    return data[:-count] + tail
