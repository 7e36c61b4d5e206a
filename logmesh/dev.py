"""`logmesh dev`: run the mesh on this machine, every role a local process on loopback.

Today the mesh is the storage cluster (three Raft nodes on the DESIGN's ports 8410-8412);
authz, discovery, the gateway and Envoy join it as their issues land. State lives under
--dir (default var/dev): certificates, each node's log, and the processes' log files, so a
second `logmesh dev` finds the same records. Ctrl-C stops every node cleanly.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from logmesh.cli_log import CERTS_DIR_ENV, DEFAULT_CERTS_DIR, DEFAULT_SERVERS, SERVERS_ENV

if TYPE_CHECKING:
    from logmesh.cli import Parser

DEFAULT_DIR = Path("var/dev")
STORAGE_PORT_BASE = 8410


def add_dev_command(subparsers: argparse._SubParsersAction[Parser]) -> None:
    from logmesh.cli import add_command

    dev = add_command(
        subparsers,
        "dev",
        _run_dev,
        help="run the logmesh mesh locally (what `make dev` runs)",
        description="Start a local logmesh: certificates on first start, then three storage "
        "nodes on 127.0.0.1:8410-8412. Runs until interrupted (Ctrl-C).",
    )
    dev.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state directory")
    dev.add_argument("--nodes", type=int, default=3, help="storage nodes (default: 3)")
    dev.add_argument(
        "--storage-ports",
        default=None,
        help=f"comma-separated ports, one per node (default: {STORAGE_PORT_BASE} upward)",
    )


def _run_dev(args: argparse.Namespace) -> int:
    from logmesh.cluster import StorageCluster

    if not 1 <= args.nodes <= 7:
        args.command_parser.error("--nodes must be between 1 and 7")
    ports = [STORAGE_PORT_BASE + i for i in range(args.nodes)]
    if args.storage_ports:
        try:
            ports = [int(p) for p in args.storage_ports.split(",")]
        except ValueError:
            args.command_parser.error("--storage-ports takes port numbers, e.g. 8410,8411,8412")
        if len(ports) != args.nodes:
            args.command_parser.error(f"--storage-ports needs {args.nodes} ports, one per node")
    _check_ports_free(ports)
    certs = args.dir / "certs"
    print(f"logmesh dev: starting {args.nodes} storage nodes (state in {args.dir})", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cluster = StorageCluster(base_dir=args.dir, size=args.nodes, certs_dir=certs, ports=ports)
    with cluster:
        leader = cluster.leader()
        servers = ",".join(n.address for n in cluster.nodes)
        print(
            _banner(cluster.nodes[0].address, leader.node_id, servers, certs, args.dir), flush=True
        )
        stop.wait()
        print("logmesh dev: stopping (leadership is handed over, in-flight writes finish)")
    print("logmesh dev: stopped; the records stay in", args.dir)
    return 0


def _check_ports_free(ports: list[int]) -> None:
    import socket

    from logmesh.errors import UnavailableError

    for port in ports:
        with socket.socket() as s:
            # Like the gRPC server, ignore connections lingering in TIME_WAIT from a last run.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise UnavailableError(
                    f"port {port} on 127.0.0.1 is in use: stop what holds it (is another "
                    "`logmesh dev` running?) and try again"
                ) from None


def _banner(first: str, leader: str, servers: str, certs: Path, state: Path) -> str:
    if servers == DEFAULT_SERVERS and certs == Path(DEFAULT_CERTS_DIR):
        finding = f"The CLI finds the nodes and the certificates ({certs}) by default.\nOther"
    else:  # not where the CLI looks by default: say how to point it here
        finding = (
            f"For the CLI, first: export {SERVERS_ENV}={servers} "
            f"{CERTS_DIR_ENV}={certs.resolve()}\nOther"
        )
    return f"""
logmesh is running: storage nodes {servers} (leader: {leader})
  produce:   .venv/bin/logmesh produce hello world
  consume:   .venv/bin/logmesh consume --from 0
  follow:    .venv/bin/logmesh consume --from 0 --follow
  servers:   .venv/bin/logmesh servers
{finding} clients need mutual TLS with a certificate from {certs} (e.g. root.pem/root.key)
and {first}. Process logs: {state / "logs"}. Stop with Ctrl-C.
"""
