"""Errors of the log engine. Each message says what happened and what to do.

Callers map these to gRPC codes (OffsetOutOfRange -> OUT_OF_RANGE/OFFSET_OUT_OF_RANGE,
OffsetTruncated -> OUT_OF_RANGE/OFFSET_TRUNCATED); this module knows nothing of gRPC.
"""

from __future__ import annotations


class LogError(Exception):
    """Base class of every error the log engine raises on purpose."""


class OffsetOutOfRange(LogError):  # noqa: N818 (names from the API contract)
    """A record offset past the end of the log was asked for."""

    def __init__(self, offset: int, next_offset: int) -> None:
        self.offset = offset
        self.next_offset = next_offset
        super().__init__(
            f"offset {offset} is past the end of the log (next offset is {next_offset}); "
            f"read from an offset below {next_offset} or wait for new records"
        )


class OffsetTruncated(LogError):  # noqa: N818 (names from the API contract)
    """A record offset below the first retained one was asked for."""

    def __init__(self, offset: int, first_offset: int) -> None:
        self.offset = offset
        self.first_offset = first_offset
        super().__init__(
            f"offset {offset} was removed by retention or compaction (first retained "
            f"offset is {first_offset}); read from offset {first_offset} or later"
        )


class IndexOutOfRange(LogError):  # noqa: N818 (names from the API contract)
    """A Raft index past the last entry was asked for."""

    def __init__(self, index: int, last_index: int) -> None:
        self.index = index
        self.last_index = last_index
        super().__init__(
            f"index {index} is past the last entry of the log ({last_index}); "
            f"ask for an index <= {last_index}"
        )


class IndexCompacted(LogError):  # noqa: N818 (names from the API contract)
    """A Raft index below the retained range was asked for."""

    def __init__(self, index: int, first_index: int) -> None:
        self.index = index
        self.first_index = first_index
        super().__init__(
            f"index {index} was compacted away (first retained index is {first_index}); "
            f"send a snapshot instead of entries below {first_index}"
        )


class NotContiguous(LogError):  # noqa: N818 (names from the API contract)
    """An append did not continue the log exactly."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"append rejected: {what}; append entries that continue the log "
            f"(truncate_suffix first to replace a conflicting tail)"
        )


class CorruptLog(LogError):  # noqa: N818 (names from the API contract)
    """On-disk damage that is not a torn tail: the log refuses to open or read."""

    def __init__(self, path: str, position: int | None, what: str) -> None:
        self.path = path
        self.position = position
        where = path if position is None else f"{path} at byte {position}"
        super().__init__(
            f"corrupt log: {where}: {what}; this is not a torn write that recovery may "
            f"cut, so the log will not open or serve it: restore this node from a replica "
            f"(or move the file away if it does not belong to the log)"
        )


class LogFull(LogError):  # noqa: N818 (names from the API contract)
    """The disk is full (ENOSPC): the append was undone, nothing of it is visible."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"no space left on the device holding {path}: the append was rolled back "
            f"and nothing of it is stored; free disk space or lower retention limits, "
            f"then retry"
        )


class FsyncFailed(LogError):  # noqa: N818 (names from the API contract)
    """An fsync failed: durability is unknown, so the log refuses further writes."""

    def __init__(self, path: str, cause: str) -> None:
        self.path = path
        super().__init__(
            f"fsync of {path} failed ({cause}): what reached the disk is unknown, so this "
            f"log accepts no more writes; stop the node, check the disk, and restart it "
            f"(recovery will re-read the log)"
        )


class LogClosed(LogError):  # noqa: N818 (names from the API contract)
    """The log was used after close()."""

    def __init__(self) -> None:
        super().__init__("the log is closed; open it again with Log.open")
