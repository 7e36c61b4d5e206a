"""Small Raft state files on the log engine's FileSystem seam, written crash-safely.

The engine-backed storage (engine_storage.py) keeps its hard state and the history of
configurations at the log's base beside the log, in the same simulated file system, so
one `MemoryFileSystem.crash` hits both. A file is replaced the way the node replaces
its own (node/atomicfile.py): write a temp file, sync it, rename it over the target,
sync the directory; a reader sees the old or the new content, never a mix.
It may not touch the log's directory (the log refuses stray files there) and knows
nothing of Raft's rules: it only encodes, decodes and replaces bytes.
"""

from __future__ import annotations

import json
from typing import Any

from logmesh_storage.log.fs import FileSystem
from logmesh_storage.raft.types import Configuration, HardState

from .errors import StateFileDamagedError

TMP_SUFFIX = ".tmp"

ConfigHistory = list[tuple[int, Configuration]]  # (index, configuration in force from it)


def write_atomic(fs: FileSystem, directory: str, name: str, data: bytes) -> None:
    """Replace `directory/name` with `data`, durably on return."""
    path = f"{directory}/{name}"
    tmp = fs.open(path + TMP_SUFFIX, create=True)
    try:
        tmp.truncate(0)  # a crash may have left an old temp file behind
        tmp.append(data)
        tmp.sync()
    finally:
        tmp.close()
    fs.rename(path + TMP_SUFFIX, path)
    fs.sync_dir(directory)


def read_file(fs: FileSystem, path: str) -> bytes | None:
    """The whole content of `path`, or None if it does not exist."""
    try:
        file = fs.open(path, create=False)
    except FileNotFoundError:
        return None
    try:
        return file.pread(0, file.size())
    finally:
        file.close()


def _decode_object(path: str, raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise StateFileDamagedError(path, f"not JSON ({error})") from error
    if not isinstance(value, dict):
        raise StateFileDamagedError(path, "not a JSON object")
    return value


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def encode_hard_state(hard_state: HardState) -> bytes:
    return _encode(
        {"term": hard_state.term, "vote": hard_state.vote, "commit": hard_state.commit_index}
    )


def decode_hard_state(path: str, raw: bytes) -> HardState:
    value = _decode_object(path, raw)
    try:
        return HardState(int(value["term"]), value["vote"], int(value["commit"]))
    except (KeyError, TypeError, ValueError) as error:
        raise StateFileDamagedError(path, f"no valid term/vote/commit ({error!r})") from error


def encode_configs(configs: ConfigHistory) -> bytes:
    return _encode(
        {
            "configs": [
                {"index": index, "voters": sorted(c.voters), "learners": sorted(c.learners)}
                for index, c in configs
            ]
        }
    )


def decode_configs(path: str, raw: bytes) -> ConfigHistory:
    value = _decode_object(path, raw)
    try:
        configs = [
            (int(c["index"]), Configuration(frozenset(c["voters"]), frozenset(c["learners"])))
            for c in value["configs"]
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise StateFileDamagedError(path, f"no valid configuration list ({error!r})") from error
    if not configs:
        raise StateFileDamagedError(path, "the configuration list is empty")
    return configs
