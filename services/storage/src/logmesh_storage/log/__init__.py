"""The segmented log engine (DESIGN §3): the Raft log and the record log in one.

Public surface: Log, LogBase, LogConfig, Entry, EntryType, RecordBlock, encode_entry, decode_entry,
encode_batch, decode_batch, EncodedBatch,
the FileSystem seam (OsFileSystem, MemoryFileSystem) and the errors. No asyncio, grpc,
socket or time in this package; only fs.OsFileSystem touches `os`.
"""

from .batch import EncodedBatch, decode_batch, encode_batch
from .config import LogConfig
from .entry import Entry, EntryType, RecordBlock
from .errors import (
    CorruptLog,
    FsyncFailed,
    IndexCompacted,
    IndexOutOfRange,
    LogClosed,
    LogError,
    LogFull,
    NotContiguous,
    OffsetOutOfRange,
    OffsetTruncated,
)
from .fs import File, FileSystem, MemoryFileSystem, OsFileSystem
from .log import Log, LogBase
from .store import FrameDamaged, decode_entry, encode_entry

__all__ = [
    "CorruptLog",
    "EncodedBatch",
    "Entry",
    "EntryType",
    "File",
    "FileSystem",
    "FrameDamaged",
    "FsyncFailed",
    "IndexCompacted",
    "IndexOutOfRange",
    "Log",
    "LogBase",
    "LogClosed",
    "LogConfig",
    "LogError",
    "LogFull",
    "MemoryFileSystem",
    "NotContiguous",
    "OffsetOutOfRange",
    "OffsetTruncated",
    "OsFileSystem",
    "RecordBlock",
    "decode_batch",
    "decode_entry",
    "encode_batch",
    "encode_entry",
]
