"""logmesh.testing: start, readiness, stop, kill, pause and resume of a real child process."""

import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from logmesh.errors import ServiceProcessError
from logmesh.testing import ServiceProcess, free_port, free_ports

CHILD = str(Path(__file__).with_name("dummy_service_child.py"))
READY_TIMEOUT_S = 20.0  # generous: a loaded 2-core machine; the wait ends as soon as it is ready
# How long a paused child must stay silent for the test to call it paused. Any answer within
# this window would be a bug, so a short window can only make the test miss a bug, not flake.
PAUSED_SILENCE_S = 0.3


def _dummy(tmp_path: Path, *flags: str, name: str = "dummy-0") -> ServiceProcess:
    return ServiceProcess([sys.executable, CHILD, *flags], {"DUMMY": "1"}, name, tmp_path)


@pytest.fixture
def dummy(tmp_path: Path) -> Iterator[ServiceProcess]:
    process = _dummy(tmp_path)
    try:
        yield process
    finally:
        process.kill()


def _ping(port: int, timeout_s: float) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn:
        return conn.recv(4)


def test_wait_ready_returns_the_port_the_child_bound(dummy: ServiceProcess) -> None:
    dummy.start()
    port = dummy.wait_ready(READY_TIMEOUT_S)
    assert port == dummy.port
    assert _ping(port, READY_TIMEOUT_S) == b"pong"


def test_output_goes_to_the_log_file_and_json_lines_are_parsed(dummy: ServiceProcess) -> None:
    dummy.start().wait_ready(READY_TIMEOUT_S)
    ready = dummy.events()[-1]
    assert ready["event"] == "ready" and ready["service"] == "dummy" and ready["node"] == "dummy-0"
    assert "plain text line before the JSON ones" in dummy.log_path.read_text()


def test_pause_silences_the_child_and_resume_brings_it_back(dummy: ServiceProcess) -> None:
    port = dummy.start().wait_ready(READY_TIMEOUT_S)
    dummy.pause()
    assert dummy.paused
    with pytest.raises(TimeoutError):
        _ping(port, PAUSED_SILENCE_S)
    dummy.resume()
    assert _ping(port, READY_TIMEOUT_S) == b"pong"


def test_stop_terminates_gracefully(dummy: ServiceProcess) -> None:
    dummy.start().wait_ready(READY_TIMEOUT_S)
    assert dummy.stop() == 0
    assert not dummy.running


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    process = _dummy(tmp_path, "--ignore-term")
    try:
        process.start().wait_ready(READY_TIMEOUT_S)
        assert process.stop(timeout_s=0.5) == -signal.SIGKILL
    finally:
        process.kill()


def test_stop_of_a_paused_child_still_terminates_it(dummy: ServiceProcess) -> None:
    dummy.start().wait_ready(READY_TIMEOUT_S)
    dummy.pause()
    assert dummy.stop() == 0


def test_kill_is_sigkill(dummy: ServiceProcess) -> None:
    dummy.start().wait_ready(READY_TIMEOUT_S)
    assert dummy.kill() == -signal.SIGKILL
    assert dummy.returncode == -signal.SIGKILL


def test_restart_waits_for_the_new_runs_ready_line(dummy: ServiceProcess) -> None:
    dummy.start().wait_ready(READY_TIMEOUT_S)
    first_pid = dummy.pid
    dummy.restart()
    port = dummy.wait_ready(READY_TIMEOUT_S)
    assert dummy.pid != first_pid
    assert _ping(port, READY_TIMEOUT_S) == b"pong"
    assert dummy.log_path.read_text().count('"event":"ready"') == 2


def test_exit_before_ready_raises_with_exit_code_and_log_tail(tmp_path: Path) -> None:
    process = _dummy(tmp_path, "--fail-before-ready")
    process.start()
    with pytest.raises(
        ServiceProcessError,
        match=r"(?s)exited before ready \(exit code 3\).*"
        r"cannot start: bad configuration",
    ):
        process.wait_ready(READY_TIMEOUT_S)


def test_ready_timeout_raises(tmp_path: Path) -> None:
    process = ServiceProcess(
        [sys.executable, "-c", "import signal; signal.pause()"], None, "silent", tmp_path
    )
    process.start()
    try:
        with pytest.raises(ServiceProcessError, match=r"did not log ready within 0\.2 s"):
            process.wait_ready(0.2)
    finally:
        assert process.kill() == -signal.SIGKILL


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3
    for port in [*ports, free_port()]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
