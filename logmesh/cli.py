"""The `logmesh` command line: argparse subcommands, one registrar function per command group.

To add a command group, write `def add_X_commands(subparsers) -> None` that makes each command
with `add_command(subparsers, name, run, ...)` (run: `function(args) -> exit code`), and list
it in `_REGISTRARS`. Import heavy modules inside the run function so `logmesh --help` stays
fast. A run function raises LogmeshError or CertsError for a failure the user can fix.

Exit codes: 0 success, 1 the command failed (a clear message, never a traceback), 2 bad usage.
This module may only parse, dispatch and print; the work lives in the modules it calls.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from logmesh import __version__
from logmesh.errors import CertsError, InvalidCertNameError, LogmeshError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
CERTS_DIR_ENV = "LOGMESH_CERTS_DIR"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors also say where to find the flags."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(
            EXIT_USAGE,
            f"{self.prog}: error: {message}\nrun '{self.prog} --help' to see the flags\n",
        )


def add_command(
    subparsers: argparse._SubParsersAction[Parser],
    name: str,
    run: Callable[[argparse.Namespace], int],
    **kwargs: Any,
) -> Parser:
    """Add a runnable command; usage errors found later are reported against its parser."""
    command = subparsers.add_parser(name, **kwargs)
    command.set_defaults(run=run, command_parser=command)
    return command


def _names(value: str) -> list[str]:
    """argparse type for comma-separated certificate names."""
    from logmesh.certs import validate_name

    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names, e.g. alice,bob")
    try:
        return [validate_name(n) for n in names]
    except InvalidCertNameError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_certs_commands(subparsers: argparse._SubParsersAction[Parser]) -> None:
    """`logmesh certs init`."""
    from logmesh.certs import DEFAULT_CLIENTS, DEFAULT_INSTANCES

    certs = subparsers.add_parser("certs", help="make certificates for mutual TLS")
    certs_sub = certs.add_subparsers(dest="certs_command", metavar="COMMAND", required=True)
    init = add_command(
        certs_sub,
        "init",
        _run_certs_init,
        help="make a CA and the certificates (idempotent: adds missing ones)",
        description="Make DIR/ca.pem, DIR/ca.key and DIR/<name>.pem, DIR/<name>.key. An existing "
        "CA is reused unless --force; missing certificates are added.",
    )
    default_dir = os.environ.get(CERTS_DIR_ENV)
    init.add_argument(
        "--dir",
        type=Path,
        default=Path(default_dir) if default_dir else None,
        required=default_dir is None,
        help=f"certificate directory (default: ${CERTS_DIR_ENV})",
    )
    init.add_argument(
        "--instances",
        type=_names,
        default=list(DEFAULT_INSTANCES),
        help="service instances, each a server-and-client certificate "
        f"(default: {','.join(DEFAULT_INSTANCES)})",
    )
    init.add_argument(
        "--names",
        type=_names,
        default=[],
        help=f"client identities to add to {','.join(DEFAULT_CLIENTS)}",
    )
    init.add_argument(
        "--force", action="store_true", help="make a new CA and reissue every certificate"
    )


def _run_certs_init(args: argparse.Namespace) -> int:
    from logmesh.certs import DEFAULT_CLIENTS, init_certs

    clients = list(dict.fromkeys([*DEFAULT_CLIENTS, *args.names]))
    report = init_certs(args.dir, args.instances, clients, force=args.force)
    ca_state = "created" if report.ca_created else "kept"
    print(f"CA {ca_state}: {args.dir / 'ca.pem'}")
    if report.created:
        print(f"created: {', '.join(report.created)}")
    if report.kept:
        print(f"kept: {', '.join(report.kept)}")
    return EXIT_OK


def _log_commands(subparsers: argparse._SubParsersAction[Parser]) -> None:
    from logmesh.cli_log import add_log_commands

    add_log_commands(subparsers)


def _dev_command(subparsers: argparse._SubParsersAction[Parser]) -> None:
    from logmesh.dev import add_dev_command

    add_dev_command(subparsers)


_REGISTRARS: tuple[Callable[[argparse._SubParsersAction[Parser]], None], ...] = (
    add_certs_commands,
    _log_commands,
    _dev_command,
)


def build_parser() -> Parser:
    parser = Parser(prog="logmesh", description="logmesh: a distributed commit log")
    parser.add_argument("--version", action="version", version=f"logmesh {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for register in _REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Report unknown flags against the command they were given to, so that its --help,
        # not the top-level one, is suggested.
        command_parser: Parser = getattr(args, "command_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except (CertsError, LogmeshError) as e:
        print(f"logmesh: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
