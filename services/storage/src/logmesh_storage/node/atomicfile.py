"""Small node state files written atomically: temp file, fsync, rename, directory fsync.

Used for the hard state, the snapshot meta and the peer table. A reader sees either the old
or the new content, never a mix, even across a crash. Blocking I/O: call it off the event loop.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import NodeStateError


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`, durably (the rename is fsynced through the directory)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: Path, value: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None if the file does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise NodeStateError(
            f"{path} is not valid JSON ({e}): it is written atomically, so the disk or another "
            "program damaged it; restore the data directory or wipe it and rejoin the cluster"
        ) from e
    if not isinstance(value, dict):
        raise NodeStateError(f"{path} does not hold a JSON object: restore or wipe the data dir")
    return value
