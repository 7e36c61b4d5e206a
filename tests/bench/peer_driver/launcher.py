"""Start and stop a 3-node logmesh cluster for the peer harness (clusters.py's interface).

    launcher.py start sut --dir D    # 3 nodes on 127.0.0.1; writes D/cluster.json, prints it
    launcher.py stop --dir D         # SIGTERM exactly those pids, SIGKILL what is left

The harness runs `start`, then its load generator in another process, then `stop`, so the nodes
must outlive this process: they run detached (own session, output to D/logs/<id>.log), unlike
logmesh.cluster's, whose output is read through a pipe by the process that started them. The
command lines come from logmesh.cluster.StorageCluster, so `make bench` and the peer run start
identical nodes. Readiness is read from the nodes' JSON log lines. This module may not import
the storage service, and `stop` never signals a pid whose command line does not name D.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from logmesh import tls
from logmesh._gen.log.v1 import log_pb2, log_pb2_grpc
from logmesh._gen.logmesh.v1 import admin_pb2, admin_pb2_grpc
from logmesh.cluster import StorageCluster
from logmesh.testing import parse_json_line

START_TIMEOUT_S = 60.0
STOP_GRACE_S = 15.0
# Another process writes the log file we wait on: there is nothing to be notified by.
POLL_S = 0.05
CALL_DEADLINE_S = 5.0
IDENTITY = "root"
DURABILITY = "fsync per batch on every node before it acknowledges; commit on a majority"


def start(base_dir: Path, size: int = 3) -> dict[str, Any]:
    """Start `size` detached nodes under base_dir, wait for one cluster with a leader that
    accepts a write, write base_dir/cluster.json and return its content."""
    template = StorageCluster(base_dir, size=size)  # makes certs; builds the command lines
    assert template.certs_dir is not None
    (base_dir / "logs").mkdir(parents=True, exist_ok=True)
    pids: list[int] = []
    addresses: list[str] = []
    try:
        for i, node in enumerate(template.nodes):
            extra = ["--bootstrap"] if i == 0 else ["--join", addresses[0]]
            log_path = base_dir / "logs" / f"{node.node_id}.log"
            pids.append(_spawn([*node.process.args, *extra], log_path))
            port = _wait_line(log_path, lambda e: e.get("event") == "ready", pids[-1])["port"]
            addresses.append(f"127.0.0.1:{port}")
        voters = sorted(n.node_id for n in template.nodes)
        for node, pid in zip(template.nodes, pids, strict=True):
            log_path = base_dir / "logs" / f"{node.node_id}.log"
            _wait_line(log_path, lambda e: _is_membership(e, voters), pid)
        leader = _leader(addresses, template.certs_dir)
        _produce_one(leader, template.certs_dir)
    except BaseException:
        _write_info(base_dir, {"pids": pids, "failed": True})
        stop(base_dir)
        raise
    info = {
        "system": "logmesh",
        "pids": pids,
        "endpoints": addresses,
        "leader": leader,
        "version": _version(),
        "durability": DURABILITY,
        "certs_dir": str(template.certs_dir),
        "identity": IDENTITY,
        "dir": str(base_dir),
    }
    _write_info(base_dir, info)
    return info


def stop(base_dir: Path) -> dict[str, Any]:
    """SIGTERM the pids of base_dir/cluster.json that still name base_dir, then SIGKILL any
    left after STOP_GRACE_S."""
    path = base_dir / "cluster.json"
    if not path.exists():
        return {"stopped": [], "note": "no cluster.json"}
    pids = [int(p) for p in json.loads(path.read_text()).get("pids", [])]
    mine = [pid for pid in pids if str(base_dir) in _cmdline(pid)]
    for pid in mine:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    left = list(mine)
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if _alive(pid)]
        time.sleep(POLL_S)
    for pid in left:
        _signal_group(pid, signal.SIGKILL)
    return {"stopped": mine, "killed": left}


def _spawn(args: Sequence[str], log_path: Path) -> int:
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.pid


def _wait_line(log_path: Path, match: Callable[[dict[str, Any]], bool], pid: int) -> dict[str, Any]:
    """The first JSON line of log_path that `match`es; fails when pid exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            event = parse_json_line(line)
            if event is not None and match(event):
                return event
        if not _alive(pid):
            raise RuntimeError(f"node pid {pid} exited during start; see {log_path}")
        time.sleep(POLL_S)
    raise RuntimeError(f"node pid {pid} not ready within {START_TIMEOUT_S:g} s; see {log_path}")


def _leader(addresses: Sequence[str], certs_dir: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for address in addresses:
            with contextlib.suppress(grpc.RpcError), _channel(address, certs_dir) as ch:
                status = admin_pb2_grpc.AdminStub(ch).Status(
                    admin_pb2.StatusRequest(), timeout=CALL_DEADLINE_S
                )
                if status.role == "leader":
                    return address
        time.sleep(POLL_S)
    raise RuntimeError(f"no leader among {list(addresses)} within {START_TIMEOUT_S:g} s")


def _produce_one(leader: str, certs_dir: Path) -> None:
    """One write through the leader proves the cluster commits."""
    with _channel(leader, certs_dir) as ch:
        request = log_pb2.ProduceRequest(record=log_pb2.Record(value=b"ready"))
        log_pb2_grpc.LogStub(ch).Produce(request, timeout=CALL_DEADLINE_S)


def _channel(address: str, certs_dir: Path) -> grpc.Channel:
    credentials = tls.channel_credentials(certs_dir, IDENTITY)
    return grpc.secure_channel(address, credentials, options=tls.channel_options())


def _write_info(base_dir: Path, info: dict[str, Any]) -> None:
    base_dir.mkdir(parents=True, exist_ok=True)
    (base_dir / "cluster.json").write_text(json.dumps(info, indent=1))


def _version() -> str:
    repo = Path(__file__).resolve().parents[3]
    try:
        rev = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = "unknown"
    return f"logmesh {rev} (working tree), python {sys.version.split()[0]}"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _signal_group(pid: int, signum: signal.Signals) -> None:
    # Each node leads its own session (start_new_session), so its group id is its pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _is_membership(event: dict[str, Any], voters: list[str]) -> bool:
    return event.get("event") == "membership" and event.get("voters") == voters


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("system", nargs="?", default="sut", help="ignored (harness interface)")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--size", type=int, default=3)
    args = parser.parse_args(argv)
    base_dir = args.dir.resolve()
    if args.action == "stop":
        print(json.dumps(stop(base_dir)), flush=True)
        return 0
    try:
        info = start(base_dir, args.size)
    except (RuntimeError, OSError, grpc.RpcError) as e:
        print(json.dumps({"system": "logmesh", "error": repr(e)}), flush=True)
        return 1
    print(json.dumps(info), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
