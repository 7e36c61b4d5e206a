"""Start real service processes for tests and for `logmesh dev`, and know when they are ready.

`ServiceProcess` runs one service in its own process group with stdout and stderr joined into a
pipe; a reader thread copies every line to `<log_dir>/<name>.log` and parses JSON lines, so a
test can wait for an event (above all `"event": "ready"` with the bound `port`) without sleeping
or polling. `stop()` is SIGTERM -> wait -> SIGKILL; `kill`, `pause` and `resume` are the fault
injections integration tests use.

This module may not import any service: services are started by command line only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

from logmesh.errors import ServiceProcessError
from logmesh.logging import READY_EVENT

STOP_TIMEOUT_S = 10.0
EXIT_AFTER_EOF_TIMEOUT_S = 5.0
_LOG_TAIL_LINES = 20

LineMatcher = Callable[[dict[str, Any]], bool]
T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago. Prefer binding port 0 in the service itself;
    use this only when a port must be known before start (e.g. to restart on the same port)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free ports (held open together so they cannot repeat)."""
    sockets = [
        socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) for _ in range(count)
    ]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


class ServiceProcess:
    """One service process. Not thread-safe: drive it from one test thread."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None,
        name: str,
        log_dir: Path | str,
    ) -> None:
        self.args = list(args)
        self.env = dict(env or {})
        self.name = name
        self.log_path = Path(log_dir) / f"{name}.log"
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._events: list[dict[str, Any]] = []  # JSON lines of the current run
        self._lines: list[str] = []  # every output line of the current run
        self._tail: list[str] = []  # last raw lines of the current run, for error messages
        self._eof = False
        self._paused = False

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the process (own process group, inherits os.environ plus `env`)."""
        assert not self.running, f"{self.name} is already running"
        if self._proc is not None:
            self._reap()  # the previous run exited on its own: finish reading its output first
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._cond:
            self._events, self._lines, self._tail = [], [], []
            self._eof, self.port = False, None
        self._proc = subprocess.Popen(
            self.args,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read_output,
            args=(self._proc.stdout,),
            name=f"log-{self.name}",
            daemon=True,
        )
        self._reader.start()
        self._paused = False
        # Safety net: a test that crashes before stop() must not leave services running on
        # this small machine. Runs at garbage collection or interpreter exit.
        weakref.finalize(self, _kill_if_running, self._proc)
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> int:
        """Wait for the `"event": "ready"` line of this run; returns (and stores) its port."""
        line = self.wait_for(lambda e: e.get("event") == READY_EVENT, timeout_s, "ready")
        port = line.get("port")
        if not isinstance(port, int):
            raise ServiceProcessError(
                f"{self.name} said ready without an integer port ({line!r}): the service must "
                "log the port it bound"
            )
        self.port = port
        return port

    def wait_for(
        self, match: LineMatcher, timeout_s: float, what: str = "a log line"
    ) -> dict[str, Any]:
        """The first JSON line of this run for which `match` is true, waiting up to timeout_s.

        Raises ServiceProcessError when the process exits first or the time runs out."""
        found = self._wait(
            lambda: next((e for e in self._events if match(e)), None), timeout_s, what
        )
        return found

    def wait_for_text(self, text: str, timeout_s: float) -> str:
        """The first output line of this run (JSON or not) containing `text`."""
        return self._wait(
            lambda: next((line for line in self._lines if text in line), None),
            timeout_s,
            f"a line with {text!r}",
        )

    def _wait(self, find: Callable[[], T | None], timeout_s: float, what: str) -> T:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = find()
                if found is not None:
                    return found
                if self._eof:
                    raise self._failure(f"exited before {what}", reap=True)
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    raise self._failure(f"did not log {what} within {timeout_s:g} s")
                self._cond.wait(remaining_s)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait up to timeout_s, then SIGKILL. Returns the exit code (None if never
        started)."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._signal(signal.SIGTERM)
            if self._paused:
                self._signal(signal.SIGCONT)  # a stopped process handles SIGTERM only when resumed
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
        return self._reap()

    def kill(self) -> int | None:
        """SIGKILL the process group (a crash: nothing is flushed, no goodbye)."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._signal(signal.SIGKILL)
        return self._reap()

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (a hung node)."""
        assert self.running, f"{self.name} is not running"
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after pause()."""
        assert self.running, f"{self.name} is not running"
        self._signal(signal.SIGCONT)
        self._paused = False

    def restart(self, timeout_s: float = STOP_TIMEOUT_S) -> Self:
        """stop() then start() with the same arguments; call wait_ready() again after."""
        self.stop(timeout_s)
        return self.start()

    # ---- state -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def paused(self) -> bool:
        return self._paused

    def events(self) -> list[dict[str, Any]]:
        """The JSON lines of the current run so far."""
        with self._cond:
            return list(self._events)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- internals ---------------------------------------------------------------------------

    def _signal(self, signum: signal.Signals) -> None:
        assert self._proc is not None
        # ProcessLookupError: the group has no members left, which is what we wanted.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signum)

    def _reap(self) -> int:
        assert self._proc is not None
        code = self._proc.wait()
        if self._reader is not None:
            # The pipe reaches EOF once every process of the group has exited.
            self._reader.join(STOP_TIMEOUT_S)
        self._paused = False
        return code

    def _read_output(self, stream: IO[bytes]) -> None:
        with open(self.log_path, "ab") as log, stream:
            for raw in stream:
                log.write(raw)
                log.flush()
                self._note_line(raw.decode("utf-8", errors="replace").rstrip("\n"))
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _note_line(self, line: str) -> None:
        event = parse_json_line(line)
        with self._cond:
            self._tail = [*self._tail[-(_LOG_TAIL_LINES - 1) :], line]
            self._lines.append(line)
            if event is not None:
                self._events.append(event)
            self._cond.notify_all()

    def _failure(self, what: str, *, reap: bool = False) -> ServiceProcessError:
        tail = "\n".join(self._tail) or "(no output)"
        code = self.returncode
        if reap and code is None and self._proc is not None:
            # Output ended, so the process is exiting: wait for its exit code to report it.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(EXIT_AFTER_EOF_TIMEOUT_S)
        status = "" if code is None else f" (exit code {code})"
        return ServiceProcessError(
            f"{self.name} {what}{status}; full log: {self.log_path}; last lines:\n{tail}"
        )


def _kill_if_running(proc: subprocess.Popen[bytes]) -> None:
    # poll() first: an unreaped child keeps its pid, so the group id cannot have been reused.
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def parse_json_line(line: str) -> dict[str, Any] | None:
    """The JSON object a log line holds (logmesh.logging's format), or None for other lines."""
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
