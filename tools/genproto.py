"""Generate the Python modules for proto/ into logmesh/_gen/.

Generated code is committed so a fresh clone imports without a build step;
`make proto-check` regenerates into a scratch folder and fails on drift.
protoc writes absolute imports named after the proto path (`from log.v1 import
...`); they are rewritten to live under `logmesh._gen`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PACKAGE = "logmesh._gen"
IMPORT_RE = re.compile(r"^(from|import) (log|logmesh)\.v1", re.MULTILINE)


def generate(out_dir: Path) -> None:
    import grpc_tools

    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    bindir = Path(sys.executable).parent
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    done = subprocess.run(cmd, cwd=PROTO_DIR, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"protoc failed:\n{done.stderr}")
    for path in out_dir.rglob("*"):
        if path.is_dir():
            (path / "__init__.py").touch()
        elif path.suffix in (".py", ".pyi"):
            text = path.read_text()
            path.write_text(IMPORT_RE.sub(rf"\1 {PACKAGE}.\2.v1", text))
    (out_dir / "__init__.py").write_text(
        '"""Generated protobuf modules: do not edit; run `make proto`."""\n'
    )


def main() -> int:
    target = ROOT / "logmesh" / "_gen"
    check = "--check" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "_gen"
        out.mkdir()
        generate(out)
        if check:
            diff = subprocess.run(
                ["diff", "-r", str(out), str(target)], capture_output=True, text=True, check=False
            )
            if diff.returncode != 0:
                print(diff.stdout[:4000])
                print("generated code is out of date: run `make proto` and commit logmesh/_gen/")
                return 1
            return 0
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(out, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
