"""Puts tests/ on sys.path so the test files can import the `simulation` package
(pytest runs with --import-mode=importlib, which adds nothing to sys.path)."""

import sys
from pathlib import Path

_TESTS_DIR = str(Path(__file__).resolve().parent.parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)
