"""logmesh.logging: one JSON object per line with service, node, level, msg and request id."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from logmesh.logging import configure_logging, log_ready, request_context


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging("storage", "storage-0", level="debug", stream=out)
    try:
        yield out
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_event_is_one_json_line_with_service_node_level_msg(stream: io.StringIO) -> None:
    log = logging.getLogger("logmesh.test")
    log.info("appended %d entries", 3, extra={"term": 2})
    log.debug("multi\nline")
    first, second = _lines(stream)
    assert first["service"] == "storage" and first["node"] == "storage-0"
    assert (first["level"], first["msg"], first["term"]) == ("info", "appended 3 entries", 2)
    assert "request_id" not in first
    assert (second["level"], second["msg"]) == ("debug", "multi\nline")


def test_request_id_comes_from_extra_or_from_the_request_context(stream: io.StringIO) -> None:
    log = logging.getLogger("logmesh.test")
    with request_context("req-1"):
        log.warning("inside")
    log.warning("explicit", extra={"request_id": "req-2"})
    log.warning("outside")
    assert [line.get("request_id") for line in _lines(stream)] == ["req-1", "req-2", None]


def test_ready_line_names_the_event_and_port(stream: io.StringIO) -> None:
    log_ready(logging.getLogger("logmesh.test"), 8410, role="storage")
    (line,) = _lines(stream)
    assert (line["event"], line["port"], line["role"]) == ("ready", 8410, "storage")


def test_exceptions_stay_on_one_line(stream: io.StringIO) -> None:
    try:
        raise ValueError("bad frame")
    except ValueError:
        logging.getLogger("logmesh.test").exception("recovery failed")
    (line,) = _lines(stream)
    assert line["level"] == "error" and "ValueError: bad frame" in line["exc"]
