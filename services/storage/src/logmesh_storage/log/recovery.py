"""Opening a log directory: which files belong to the log, in what order, and cleanup.

Rules (docs/log-format.md, "Recovery"): `*.tmp` files and index caches without a
segment are leftovers of an interrupted operation and are removed; segments of an
older generation are leftovers of an interrupted reset and are removed; anything else
unknown is a stray file and stops the open with CorruptLog naming it. The remaining
segments must chain exactly (no gap, no overlap). Does not append or read entries.
"""

from __future__ import annotations

from .errors import CorruptLog
from .fs import FileSystem
from .segment import INDEX_SUFFIX, SEGMENT_SUFFIX, TMP_SUFFIX, Segment, segment_name
from .store import SEGMENT_HEADER_BYTES, SegmentHeader

_NAME_DIGITS = 20


def _is_number(stem: str) -> bool:
    return len(stem) == _NAME_DIGITS and stem.isdigit()


def _classify(directory: str, names: list[str]) -> tuple[list[str], list[str]]:
    """(segment names, names to clean up); raises CorruptLog for a stray file."""
    segments = [n for n in names if n.endswith(SEGMENT_SUFFIX)]
    stems = {n[: -len(SEGMENT_SUFFIX)] for n in segments}
    leftovers = []
    for name in names:
        stem, _, suffix = name.rpartition(".")
        if name.endswith(TMP_SUFFIX) and _is_number(name.split(".")[0]):
            leftovers.append(name)
        elif "." + suffix == INDEX_SUFFIX and _is_number(stem):
            if stem not in stems:
                leftovers.append(name)
        elif "." + suffix == SEGMENT_SUFFIX and _is_number(stem):
            continue
        else:
            raise CorruptLog(
                f"{directory}/{name}", None, "a file that is not part of a logmesh log"
            )
    return sorted(segments), leftovers


def _read_header(fs: FileSystem, path: str) -> SegmentHeader:
    store = fs.open(path, create=False)
    try:
        decoded = SegmentHeader.decode(store.pread(0, SEGMENT_HEADER_BYTES))
    finally:
        store.close()
    if isinstance(decoded, str):
        raise CorruptLog(path, 0, decoded)
    expected = segment_name(decoded.base_index)
    if not path.endswith("/" + expected):
        raise CorruptLog(
            path, 0, f"the header says base index {decoded.base_index} (file {expected})"
        )
    return decoded


def _remove_all(fs: FileSystem, directory: str, names: list[str]) -> None:
    for name in names:
        fs.remove(f"{directory}/{name}")
    if names:
        fs.sync_dir(directory)


def open_segments(fs: FileSystem, directory: str) -> tuple[list[Segment], int]:
    """The recovered segments in order (possibly none) and the current generation."""
    fs.make_dirs(directory)
    names, leftovers = _classify(directory, fs.list_dir(directory))
    _remove_all(fs, directory, leftovers)
    headers = {name: _read_header(fs, f"{directory}/{name}") for name in names}
    generation = max((h.generation for h in headers.values()), default=0)
    stale = [n for n, h in headers.items() if h.generation < generation]
    stale += [n[: -len(SEGMENT_SUFFIX)] + INDEX_SUFFIX for n in stale]
    _remove_all(fs, directory, [n for n in stale if n in set(fs.list_dir(directory))])
    current = sorted(
        (h for h in headers.values() if h.generation == generation),
        key=lambda h: h.base_index,
    )
    segments: list[Segment] = []
    for k, header in enumerate(current):
        path = f"{directory}/{segment_name(header.base_index)}"
        if segments:
            _check_chain(segments[-1], header, path)
        store = fs.open(path, create=False)
        segments.append(Segment.load(fs, directory, header, store, k == len(current) - 1))
    return segments, generation


def _check_chain(previous: Segment, header: SegmentHeader, path: str) -> None:
    """A segment must start exactly where the one before it ends."""
    if header.base_index != previous.last_index + 1:
        raise CorruptLog(
            path,
            0,
            f"segment gap: it starts at index {header.base_index} but the previous "
            f"segment ends at {previous.last_index}",
        )
    if header.base_offset != previous.next_offset or header.prev_term != previous.last_term:
        raise CorruptLog(
            path,
            0,
            f"segment does not continue the previous one (offset {header.base_offset} vs "
            f"{previous.next_offset}, previous term {header.prev_term} vs {previous.last_term})",
        )
