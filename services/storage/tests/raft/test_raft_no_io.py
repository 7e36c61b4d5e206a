"""DESIGN §4 / STYLE house habit 1: the Raft core is sans-IO. Parse every module's
imports (not a grep: aliases and `from x import y` count too)."""

import ast
from pathlib import Path

import logmesh_storage.raft as raft_package

FORBIDDEN = {"asyncio", "grpc", "socket", "time", "os", "threading", "io", "pathlib", "select"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_raft_package_imports_no_io_modules() -> None:
    package_dir = Path(raft_package.__file__).parent
    modules = sorted(package_dir.glob("*.py"))
    assert len(modules) > 10, "the package was not found"
    offenders = {m.name: _imported_roots(m) & FORBIDDEN for m in modules}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_no_io_check_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("import os.path as p\nfrom time import monotonic\n")
    assert _imported_roots(sample) & FORBIDDEN == {"os", "time"}
