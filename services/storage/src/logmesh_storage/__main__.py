"""`python -m logmesh_storage` / `logmesh-storage`: run one storage node.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 1 when the node cannot start or must stop
(damaged state, fsync failure, port in use), 2 for bad flags or environment variables.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from logmesh.errors import CertsError
from logmesh.logging import configure_logging

from .log.errors import LogError
from .node.config import parse
from .node.errors import NodeError
from .node.server import serve

log = logging.getLogger("logmesh_storage")


def main(argv: Sequence[str] | None = None) -> int:
    config = parse(argv)
    configure_logging("storage", config.node_id)
    try:
        return asyncio.run(serve(config))
    except (NodeError, LogError, CertsError, OSError) as e:
        # Each of these says what happened and what to fix; no traceback is needed.
        log.critical("cannot run: %s", e, extra={"event": "fatal"})
        return 1


if __name__ == "__main__":
    sys.exit(main())
