"""The `logmesh` command line against real storage nodes: what a user types and reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from logmesh.cluster import StorageCluster
from logmesh.testing import ServiceProcess, free_ports

CLI_TIMEOUT_S = 30


def logmesh(
    cluster: StorageCluster, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    servers = ",".join(n.address for n in cluster.nodes)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "logmesh",
            *args,
            "--servers",
            servers,
            "--certs",
            str(cluster.certs_dir),
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def test_produce_then_consume_prints_offsets_and_records(storage_cluster: StorageCluster) -> None:
    produced = logmesh(storage_cluster, "produce", "alpha", "beta")
    assert produced.returncode == 0, produced.stderr
    first, second = (int(x) for x in produced.stdout.split())
    assert second == first + 1

    consumed = logmesh(storage_cluster, "consume", "--from", str(first), "--max", "2")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == [f"{first}\talpha", f"{second}\tbeta"]


def test_produce_streams_stdin_lines_in_order(storage_cluster: StorageCluster) -> None:
    lines = [f"line {i}" for i in range(1000)]
    produced = logmesh(storage_cluster, "produce", stdin="".join(f"{x}\n" for x in lines))
    assert produced.returncode == 0, produced.stderr
    offsets = [int(x) for x in produced.stdout.split()]
    assert offsets == list(range(offsets[0], offsets[0] + len(lines)))

    consumed = logmesh(storage_cluster, "consume", "--from", str(offsets[0]), "--max", "1000")
    assert consumed.stdout.splitlines() == [
        f"{o}\t{x}" for o, x in zip(offsets, lines, strict=True)
    ]


def test_produce_reads_stdin_lines_and_batch_gets_consecutive_offsets(
    storage_cluster: StorageCluster,
) -> None:
    produced = logmesh(storage_cluster, "produce", "--batch", stdin="one\ntwo\nthree\n")
    assert produced.returncode == 0, produced.stderr
    offsets = [int(x) for x in produced.stdout.split()]
    assert offsets == list(range(offsets[0], offsets[0] + 3))

    consumed = logmesh(storage_cluster, "consume", "--from", str(offsets[0]), "--json")
    records = [json.loads(line) for line in consumed.stdout.splitlines()]
    assert [r["value"] for r in records[:3]] == ["one", "two", "three"]
    assert all(r["term"] >= 1 and r["append_time_ms"] > 0 for r in records)


def test_consume_past_the_end_prints_nothing_and_says_why(
    storage_cluster: StorageCluster,
) -> None:
    consumed = logmesh(storage_cluster, "consume", "--from", "1000000")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout == ""
    assert "no committed record at offset 1000000" in consumed.stderr
    assert "--follow" in consumed.stderr


def test_servers_lists_one_leader(storage_cluster: StorageCluster) -> None:
    listed = logmesh(storage_cluster, "servers")
    assert listed.returncode == 0, listed.stderr
    roles = [line.split()[2] for line in listed.stdout.splitlines()[1:]]
    assert sorted(roles) == ["follower", "follower", "leader"]


def test_missing_certificates_say_how_to_make_them(
    storage_cluster: StorageCluster, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "logmesh", "produce", "x", "--certs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 1
    assert f"logmesh certs init --dir {tmp_path}" in done.stderr
    assert "Traceback" not in done.stderr


def test_unreachable_servers_fail_with_advice_not_a_traceback(
    storage_cluster: StorageCluster,
) -> None:
    (port,) = free_ports(1)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "logmesh",
            "consume",
            "--servers",
            f"127.0.0.1:{port}",
            "--certs",
            str(storage_cluster.certs_dir),
            "--deadline",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 1
    assert "unavailable" in done.stderr.lower()
    assert "Traceback" not in done.stderr


def test_logmesh_dev_runs_a_cluster_that_keeps_records_across_restarts(tmp_path: Path) -> None:
    """Started elsewhere than its defaults, `logmesh dev` says how to point the CLI at it, and
    what it says works."""
    ports = free_ports(3)
    args = [
        sys.executable,
        "-m",
        "logmesh",
        "dev",
        "--dir",
        str(tmp_path / "dev"),
        "--storage-ports",
        ",".join(map(str, ports)),
    ]
    env: dict[str, str] = {}

    def cli(*more: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "logmesh", *more],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=True,
            env={**os.environ, **env},
        )
        return done.stdout

    dev = ServiceProcess(args, {}, "dev", tmp_path / "logs")
    dev.start()
    try:
        dev.wait_for_text("logmesh is running", 60)
        export = dev.wait_for_text("export ", 5).split("export ", 1)[1]
        for assignment in export.split():
            key, value = assignment.split("=", 1)
            env[key] = value
        assert env["LOGMESH_SERVERS"] == ",".join(f"127.0.0.1:{p}" for p in ports)
        assert cli("produce", "kept").split() == ["0"]
    finally:
        assert dev.stop(timeout_s=30) == 0
    dev.start()
    try:
        dev.wait_for_text("logmesh is running", 60)
        assert cli("consume", "--from", "0") == "0\tkept\n"
    finally:
        assert dev.stop(timeout_s=30) == 0
