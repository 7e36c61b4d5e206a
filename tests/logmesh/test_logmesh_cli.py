"""logmesh.cli: `logmesh certs init` and usage errors (exit code 2 with a clear message)."""

import subprocess
import sys
from pathlib import Path

import pytest

from logmesh.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == EXIT_USAGE
    return capsys.readouterr().err


def test_unknown_flag_names_the_flag_and_the_commands_help(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = _usage_error(capsys, ["certs", "init", "--dir", str(tmp_path), "--bogus"])
    assert "unrecognized arguments: --bogus" in err
    assert "run 'logmesh certs init --help'" in err
    assert not any(tmp_path.iterdir())


def test_invalid_name_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _usage_error(capsys, ["certs", "init", "--dir", str(tmp_path), "--names", "Bad_Name"])
    assert "argument --names: certificate name 'Bad_Name' is not allowed" in err


def test_missing_dir_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOGMESH_CERTS_DIR", raising=False)
    err = _usage_error(capsys, ["certs", "init"])
    assert "the following arguments are required: --dir" in err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid choice: 'bogus'" in _usage_error(capsys, ["bogus"])


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE
    assert "certs" in capsys.readouterr().err


def test_certs_init_makes_requested_names_then_keeps_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["certs", "init", "--dir", str(tmp_path), "--instances", "storage-0", "--names", "bob"]
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert "CA created" in out and "created: storage-0, root, nobody, operator, bob" in out
    assert main(argv) == EXIT_OK
    assert "kept: storage-0, root, nobody, operator, bob" in capsys.readouterr().out


def test_certs_init_failure_is_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    assert main(["certs", "init", "--dir", str(tmp_path / "file" / "certs")]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("logmesh: error: cannot write certificates to")
    assert "Traceback" not in err and err.count("\n") == 1


def test_python_dash_m_entry_point_reports_usage_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "logmesh", "certs", "init", "--dir", str(tmp_path), "--bogus"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_USAGE
    assert "unrecognized arguments: --bogus" in result.stderr
