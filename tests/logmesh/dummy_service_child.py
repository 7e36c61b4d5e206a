"""A stand-in service for logmesh.testing tests: binds port 0, says ready, answers b"pong".

Flags: --fail-before-ready (exit 3 before the ready line), --ignore-term (survive SIGTERM).
Run with the project's Python; it imports logmesh.logging like a real service does.
"""

import logging
import signal
import socket
import sys

from logmesh.logging import configure_logging, log_ready


def main() -> int:
    configure_logging("dummy", "dummy-0", stream=sys.stdout)
    log = logging.getLogger("dummy")
    print("plain text line before the JSON ones", flush=True)
    if "--fail-before-ready" in sys.argv:
        log.error("cannot start: bad configuration")
        return 3
    if "--ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        log_ready(log, listener.getsockname()[1])
        while True:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"pong")


if __name__ == "__main__":
    sys.exit(main())
