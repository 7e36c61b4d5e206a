"""`logmesh produce`, `logmesh consume`, `logmesh servers`: the log from the command line.

Parsing and printing only; the work is logmesh.client's. Records print one per line as
`OFFSET<TAB>VALUE`, the value decoded as UTF-8 with undecodable bytes escaped, so the output
pipes into other tools; `--json` prints one JSON object per record instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from logmesh.cli import Parser
    from logmesh.client import LogClient, Record

SERVERS_ENV = "LOGMESH_SERVERS"
CERTS_DIR_ENV = "LOGMESH_CERTS_DIR"
DEFAULT_SERVERS = "127.0.0.1:8410,127.0.0.1:8411,127.0.0.1:8412"
DEFAULT_CERTS_DIR = "var/dev/certs"
CONSUME_RECORDS_MAX = 1_000_000
STDIN_LINES_AHEAD = 1024  # lines read from stdin before the cluster took them, at most


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--servers",
        default=os.environ.get(SERVERS_ENV, DEFAULT_SERVERS),
        help=f"comma-separated host:port of logmesh servers (default: ${SERVERS_ENV} or "
        f"{DEFAULT_SERVERS}, the storage nodes of `make dev`)",
    )
    parser.add_argument(
        "--certs",
        type=Path,
        default=Path(os.environ.get(CERTS_DIR_ENV, DEFAULT_CERTS_DIR)),
        help=f"certificate directory (default: ${CERTS_DIR_ENV} or {DEFAULT_CERTS_DIR})",
    )
    parser.add_argument(
        "--as", dest="identity", default="root", help="client certificate name (default: root)"
    )
    parser.add_argument(
        "--deadline", type=float, default=5.0, help="seconds allowed per call (default: 5)"
    )


def add_log_commands(subparsers: argparse._SubParsersAction[Parser]) -> None:
    from logmesh.cli import add_command

    produce = add_command(
        subparsers,
        "produce",
        _run_produce,
        help="append records",
        description="Append each VALUE as a record, or each line of standard input when no "
        "VALUE is given, in order, pipelined on one stream. Prints each record's offset once a "
        "majority has it on disk.",
    )
    produce.add_argument("values", nargs="*", metavar="VALUE")
    produce.add_argument(
        "--batch", action="store_true", help="append all values as one batch (one round trip)"
    )
    _add_connection_flags(produce)

    consume = add_command(
        subparsers,
        "consume",
        _run_consume,
        help="read records",
        description="Print committed records from --from on, as OFFSET<TAB>VALUE. Stops at the "
        "end of the log unless --follow, which waits for new records until interrupted.",
    )
    consume.add_argument("--from", dest="offset", type=int, default=0, help="first offset")
    consume.add_argument("--follow", "-f", action="store_true", help="follow the tail")
    consume.add_argument("--max", type=int, default=CONSUME_RECORDS_MAX, help="records at most")
    consume.add_argument("--json", action="store_true", help="one JSON object per record")
    _add_connection_flags(consume)

    servers = add_command(
        subparsers, "servers", _run_servers, help="list the cluster's servers and their roles"
    )
    _add_connection_flags(servers)


def _client(args: argparse.Namespace) -> LogClient:
    from logmesh.client import LogClient
    from logmesh.errors import UnavailableError

    addresses = [a.strip() for a in args.servers.split(",") if a.strip()]
    if not addresses:
        args.command_parser.error("--servers needs at least one host:port")
    for name in ("ca.pem", f"{args.identity}.pem", f"{args.identity}.key"):
        if not (args.certs / name).is_file():
            raise UnavailableError(
                f"no {name} in {args.certs}: run `logmesh certs init --dir {args.certs}` "
                "(or `make dev`, which makes them), or pass --certs DIR"
            )
    return LogClient(addresses, args.certs, args.identity, deadline_s=args.deadline)


def _run(args: argparse.Namespace, work: Coroutine[Any, Any, None]) -> int:
    """Run a command's coroutine; an unreachable cluster gets advice on where to look."""
    from logmesh.errors import UnavailableError

    try:
        asyncio.run(work)
    except UnavailableError as e:
        raise UnavailableError(
            f"could not reach a logmesh server at {args.servers} ({e.message}); is logmesh "
            f"running (`make dev`)? Point --servers or ${SERVERS_ENV} at its nodes"
        ) from None
    return 0


def _print_record(record: Record, as_json: bool) -> None:
    value = record.value.decode("utf-8", errors="backslashreplace")
    if as_json:
        line = json.dumps(
            {
                "offset": record.offset,
                "value": value,
                "term": record.term,
                "append_time_ms": record.append_time_ms,
            }
        )
    else:
        line = f"{record.offset}\t{value}"
    print(line, flush=True)


def _run_produce(args: argparse.Namespace) -> int:
    async def run() -> None:
        async with _client(args) as client:
            if args.batch:
                values = [v.encode() for v in args.values] or [
                    line.rstrip("\n").encode() for line in sys.stdin
                ]
                for offset in await client.produce_batch(values):
                    print(offset, flush=True)
                return
            source = [v.encode() for v in args.values] if args.values else _stdin_lines()
            async for offset in client.produce_many(source):
                print(offset, flush=True)

    return _run(args, run())


async def _stdin_lines() -> AsyncIterator[bytes]:
    """Lines of standard input as they come (so `tail -f FILE | logmesh produce` streams),
    read by a daemon thread so that answers keep printing while a line is awaited and an
    error ends the command without waiting for more input."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue(STDIN_LINES_AHEAD)

    def read() -> None:
        try:
            for line in sys.stdin:
                asyncio.run_coroutine_threadsafe(lines.put(line), loop).result()
            asyncio.run_coroutine_threadsafe(lines.put(None), loop).result()
        except RuntimeError:
            return  # the command ended first (its loop is closed)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    while (line := await lines.get()) is not None:
        yield line.rstrip("\n").encode()


def _run_consume(args: argparse.Namespace) -> int:
    if args.offset < 0 or args.max < 1:
        args.command_parser.error("--from must be >= 0 and --max >= 1")

    async def run() -> None:
        async with _client(args) as client:
            if args.follow:
                count = 0
                async for record in client.consume_stream(args.offset, batch_records_max=256):
                    _print_record(record, args.json)
                    count += 1
                    if count >= args.max:
                        return
            else:
                printed = 0
                async for record in client.consume_range(args.offset, args.max):
                    _print_record(record, args.json)
                    printed += 1
                if not printed:
                    # Say why nothing came out, on stderr so pipes stay clean.
                    print(
                        f"logmesh: no committed record at offset {args.offset} yet: the log "
                        "ends before it (use --follow to wait for new records)",
                        file=sys.stderr,
                    )

    return _run(args, run())


def _run_servers(args: argparse.Namespace) -> int:
    async def run() -> None:
        async with _client(args) as client:
            servers = await client.servers()
        print(f"{'ID':<12} {'ADDRESS':<22} {'ROLE':<10} LAG")
        for s in servers:
            print(f"{s.id:<12} {s.rpc_addr:<22} {s.role or '-':<10} {s.lag}")

    return _run(args, run())
