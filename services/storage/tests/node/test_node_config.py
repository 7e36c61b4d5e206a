"""Flags and environment variables of the storage node: values, precedence, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from logmesh_storage.node.config import parse

BASE = ["--id", "storage-1", "--data-dir", "/d", "--tls-dir", "/c"]


def test_flags_give_every_value() -> None:
    config = parse(
        [
            *BASE,
            "--listen",
            "0.0.0.0:9000",
            "--join",
            "a:1, b:2",
            "--tick-ms",
            "20",
            "--election-ticks",
            "12",
            "--retention-bytes-max",
            "1000",
        ],
        env={},
    )
    assert config.node_id == "storage-1"
    assert config.data_dir == Path("/d")
    assert config.listen == "0.0.0.0:9000"
    assert config.join == ("a:1", "b:2")
    assert not config.bootstrap
    assert (config.tick_ms, config.election_ticks, config.retention_bytes_max) == (20, 12, 1000)
    assert config.retention_age_ms == 0


def test_environment_fills_in_and_flags_win() -> None:
    env = {
        "LOGMESH_NODE_ID": "storage-0",
        "LOGMESH_DATA_DIR": "/e",
        "LOGMESH_TLS_DIR": "/t",
        "LOGMESH_BOOTSTRAP": "1",
        "LOGMESH_TICK_MS": "30",
    }
    config = parse(["--tick-ms", "40"], env=env)
    assert (config.node_id, config.data_dir, config.bootstrap) == ("storage-0", Path("/e"), True)
    assert config.tick_ms == 40


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([*BASE, "--tick-ms", "fast"], {}, "--tick-ms / LOGMESH_TICK_MS must be an integer"),
        (BASE, {"LOGMESH_ELECTION_TICKS": "x"}, "LOGMESH_ELECTION_TICKS must be an integer"),
        ([*BASE, "--tick-ms", "0"], {}, "--tick-ms must be > 0"),
        (["--data-dir", "/d", "--tls-dir", "/c"], {}, "--id / LOGMESH_NODE_ID is required"),
        (["--id", "node1", "--data-dir", "/d", "--tls-dir", "/c"], {}, "must look like storage-0"),
        ([*BASE, "--listen", "localhost"], {}, "is not a host:port address"),
        ([*BASE, "--bootstrap", "--join", "a:1"], {}, "exclude each other"),
        ([*BASE, "--heartbeat-ticks", "6"], {}, "at most half of --election-ticks"),
        ([*BASE, "--retention-age-ms", "-1"], {}, "must be >= 0"),
        ([*BASE, "--record-bytes-max", str(1 << 30)], {}, "--record-bytes-max must be at most"),
    ],
)
def test_bad_values_exit_2_naming_the_flag(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(argv, env=env)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
