"""The node's configuration: command-line flags, each with an environment variable fallback.

A flag wins over its variable; a bad value of either stops the node with a message naming the
flag and variable and exit status 2 (argparse's usage error). Nothing here touches the disk or
the network: it only parses and validates.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from logmesh import tls

from .errors import ConfigError

RECORD_BYTES_LIMIT = tls.MESSAGE_BYTES_MAX // 2
_NODE_ID_RE = re.compile(r"^storage-[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node_id: str
    data_dir: Path
    listen: str
    advertise: str | None  # None: the listen host with the bound port
    bootstrap: bool
    join: tuple[str, ...]
    tls_dir: Path
    cluster_id: str
    tick_ms: int
    election_ticks: int
    heartbeat_ticks: int
    segment_bytes_max: int
    retention_bytes_max: int  # 0: no limit
    retention_age_ms: int  # 0: no limit
    record_bytes_max: int
    seed: int | None  # None: seeded from the OS


# (flag, env var, type, default, help). Defaults suit a local 3-node cluster.
_OPTIONS: tuple[tuple[str, str, type, object, str], ...] = (
    ("--id", "LOGMESH_NODE_ID", str, None, "node id, also its certificate name (storage-N)"),
    ("--data-dir", "LOGMESH_DATA_DIR", str, None, "directory of the log and Raft state"),
    ("--listen", "LOGMESH_LISTEN", str, "127.0.0.1:8410", "host:port to listen on (port 0: any)"),
    ("--advertise", "LOGMESH_ADVERTISE", str, None, "host:port peers and clients dial"),
    ("--join", "LOGMESH_JOIN", str, "", "comma-separated seed addresses to join through"),
    ("--tls-dir", "LOGMESH_TLS_DIR", str, None, "directory made by `logmesh certs init`"),
    ("--cluster-id", "LOGMESH_CLUSTER_ID", str, "logmesh", "refuse peers of other clusters"),
    ("--tick-ms", "LOGMESH_TICK_MS", int, 50, "length of one Raft tick"),
    ("--election-ticks", "LOGMESH_ELECTION_TICKS", int, 10, "election timeout in ticks"),
    ("--heartbeat-ticks", "LOGMESH_HEARTBEAT_TICKS", int, 1, "heartbeat interval in ticks"),
    ("--segment-bytes-max", "LOGMESH_SEGMENT_BYTES_MAX", int, 64 << 20, "segment file size"),
    ("--retention-bytes-max", "LOGMESH_RETENTION_BYTES_MAX", int, 0, "log size kept (0: all)"),
    ("--retention-age-ms", "LOGMESH_RETENTION_AGE_MS", int, 0, "record age kept (0: all)"),
    ("--record-bytes-max", "LOGMESH_RECORD_BYTES_MAX", int, 1 << 20, "largest record value"),
    ("--seed", "LOGMESH_SEED", int, None, "seed of the election randomness (tests)"),
)


def parse(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> NodeConfig:
    """Parse flags and environment; on a bad value print why and exit with status 2."""
    env = os.environ if env is None else env
    parser = _parser(env)
    args = parser.parse_args(argv)
    try:
        return _validate(args, env)
    except ConfigError as e:
        parser.error(str(e))


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logmesh-storage", description="A logmesh storage node (Raft-replicated log)."
    )
    for flag, var, kind, default, help_text in _OPTIONS:
        raw = env.get(var)
        parser.add_argument(
            flag,
            dest=flag[2:].replace("-", "_"),
            default=default if raw is None else raw,
            help=f"{help_text} [env {var}]",
        )
        del kind  # converted in _validate, so env values get the same checks as flags
    parser.add_argument(
        "--bootstrap",
        action="store_true",
        default=_truthy(env.get("LOGMESH_BOOTSTRAP", "")),
        help="on first start, make a new one-node cluster [env LOGMESH_BOOTSTRAP=1]",
    )
    return parser


def _truthy(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _validate(args: argparse.Namespace, env: Mapping[str, str]) -> NodeConfig:
    values: dict[str, object] = {}
    for flag, var, kind, _default, _help in _OPTIONS:
        name = flag[2:].replace("-", "_")
        raw = getattr(args, name)
        if raw is None or kind is str:
            values[name] = raw
            continue
        try:
            values[name] = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{flag} / {var} must be an integer, got {raw!r}") from None
    node_id = _required(values, "id", "--id / LOGMESH_NODE_ID")
    if not _NODE_ID_RE.match(node_id):
        raise ConfigError(
            f"--id / LOGMESH_NODE_ID must look like storage-0 (lowercase, digits, '-'), "
            f"got {node_id!r}: it is also the name of the node's certificate"
        )
    join = tuple(a.strip() for a in str(values["join"]).split(",") if a.strip())
    if args.bootstrap and join:
        raise ConfigError(
            "--bootstrap and --join exclude each other: a node starts one cluster or joins one"
        )
    for address in (str(values["listen"]), *join):
        _check_address(address)
    if values["advertise"] is not None:
        _check_address(str(values["advertise"]))
    _positive(
        values,
        "tick_ms",
        "election_ticks",
        "heartbeat_ticks",
        "segment_bytes_max",
        "record_bytes_max",
    )
    _non_negative(values, "retention_bytes_max", "retention_age_ms")
    if _int(values, "record_bytes_max") > RECORD_BYTES_LIMIT:
        raise ConfigError(
            f"--record-bytes-max must be at most {RECORD_BYTES_LIMIT} (a record must fit in one "
            f"gRPC message with room to spare), got {values['record_bytes_max']}"
        )
    if _int(values, "heartbeat_ticks") * 2 > _int(values, "election_ticks"):
        raise ConfigError(
            "--heartbeat-ticks must be at most half of --election-ticks, or "
            "followers time out between heartbeats"
        )
    return NodeConfig(
        node_id=node_id,
        data_dir=Path(_required(values, "data_dir", "--data-dir / LOGMESH_DATA_DIR")),
        listen=str(values["listen"]),
        advertise=None if values["advertise"] is None else str(values["advertise"]),
        bootstrap=bool(args.bootstrap),
        join=join,
        tls_dir=Path(_required(values, "tls_dir", "--tls-dir / LOGMESH_TLS_DIR")),
        cluster_id=str(values["cluster_id"]),
        tick_ms=_int(values, "tick_ms"),
        election_ticks=_int(values, "election_ticks"),
        heartbeat_ticks=_int(values, "heartbeat_ticks"),
        segment_bytes_max=_int(values, "segment_bytes_max"),
        retention_bytes_max=_int(values, "retention_bytes_max"),
        retention_age_ms=_int(values, "retention_age_ms"),
        record_bytes_max=_int(values, "record_bytes_max"),
        seed=None if values["seed"] is None else _int(values, "seed"),
    )


def _int(values: dict[str, object], name: str) -> int:
    value = values[name]
    assert isinstance(value, int), (name, value)
    return value


def _required(values: dict[str, object], name: str, label: str) -> str:
    value = values[name]
    if not value:
        raise ConfigError(f"{label} is required")
    return str(value)


def _positive(values: dict[str, object], *names: str) -> None:
    for name in names:
        if _int(values, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {values[name]}")


def _non_negative(values: dict[str, object], *names: str) -> None:
    for name in names:
        if _int(values, name) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {values[name]}")


def _check_address(address: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{address!r} is not a host:port address (example 127.0.0.1:8410)")
