"""Structured JSON logs: one line per event with service, node, level, msg (DESIGN §7).

`configure_logging(service, node)` installs a JSON formatter on the root logger, so services
keep using `logging.getLogger(__name__)`; extra fields go in `extra={...}` and end up as keys of
the line. The request id comes from `extra={"request_id": ...}` or from the context variable set
by `request_context(...)` (set per call by a servicer or interceptor).

`log_ready(logger, port)` writes the readiness line (`"event": "ready"`, `"port"`) that
logmesh.testing waits for: a service binds port 0 (or a fixed port) and reports the port it got.
This module may not do I/O other than writing log lines.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import sys
from collections.abc import Iterator
from typing import IO, Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "logmesh_request_id", default=None
)

READY_EVENT = "ready"

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def __init__(self, service: str, node: str) -> None:
        super().__init__()
        self.service = service
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "service": self.service,
            "node": self.node,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            line["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in line:
                line[key] = value
        if record.exc_info:
            # The traceback stays in the server's log, as one JSON string; it is never sent
            # to a client.
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def configure_logging(
    service: str, node: str, *, level: str | int = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Route the root logger to `stream` (stderr) as JSON lines; replaces earlier handlers."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(service, node))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


@contextlib.contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    """Log lines written inside this block (same task/thread) carry `request_id`."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


def log_ready(logger: logging.Logger, port: int, **fields: Any) -> None:
    """Announce readiness: the line logmesh.testing.ServiceProcess.wait_ready looks for."""
    logger.info("ready on port %d", port, extra={"event": READY_EVENT, "port": port, **fields})
