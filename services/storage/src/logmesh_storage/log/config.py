"""Configuration of the log engine: limits only, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogConfig:
    """segment_bytes_max: roll to a new segment once the active one holds this many bytes
        (a batch never spans segments, so a segment may exceed it by one batch).
    retention_bytes_max: apply_retention drops the oldest eligible segments while the
        log is larger than this; None keeps everything.
    retention_age_ms_max: apply_retention drops eligible segments whose newest entry is
        older than this; None keeps everything.
    """

    segment_bytes_max: int = 64 * 1024 * 1024
    retention_bytes_max: int | None = None
    retention_age_ms_max: int | None = None

    def __post_init__(self) -> None:
        if self.segment_bytes_max < 1:
            raise ValueError(f"segment_bytes_max must be >= 1, got {self.segment_bytes_max}")
        if self.retention_bytes_max is not None and self.retention_bytes_max < 0:
            raise ValueError(f"retention_bytes_max must be >= 0, got {self.retention_bytes_max}")
        if self.retention_age_ms_max is not None and self.retention_age_ms_max < 0:
            raise ValueError(f"retention_age_ms_max must be >= 0, got {self.retention_age_ms_max}")
