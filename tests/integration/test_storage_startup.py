"""A storage node that cannot start says why, in one line, with the right exit status:
2 for a bad flag, 1 for missing certificates or a taken port. No traceback reaches the user."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from logmesh.certs import init_certs

RUN_TIMEOUT_S = 30.0


def run_node(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logmesh_storage", *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def test_a_bad_flag_exits_2_naming_it(tmp_path: Path) -> None:
    result = run_node(
        "--id",
        "storage-0",
        "--data-dir",
        str(tmp_path / "d"),
        "--tls-dir",
        str(tmp_path),
        "--election-ticks",
        "soon",
    )
    assert result.returncode == 2
    assert "--election-ticks / LOGMESH_ELECTION_TICKS must be an integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_certificates_exit_1_before_touching_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    result = run_node(
        "--id",
        "storage-0",
        "--data-dir",
        str(data_dir),
        "--tls-dir",
        str(tmp_path / "none"),
        "--bootstrap",
    )
    assert result.returncode == 1
    assert "logmesh certs init" in result.stderr
    assert "Traceback" not in result.stderr
    assert not data_dir.exists()


def test_a_taken_port_exits_1_with_advice(tmp_path: Path) -> None:
    init_certs(tmp_path / "certs", instances=("storage-0",), clients=())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_node(
            "--id",
            "storage-0",
            "--data-dir",
            str(tmp_path / "d"),
            "--tls-dir",
            str(tmp_path / "certs"),
            "--listen",
            f"127.0.0.1:{port}",
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
