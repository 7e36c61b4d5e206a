"""Fixtures shared by the logmesh package tests: certificate directories made once per session."""

from pathlib import Path

import pytest

from logmesh.certs import init_certs


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete certificate directory (default instances and clients, plus 'alice')."""
    directory = tmp_path_factory.mktemp("certs")
    init_certs(directory, clients=("root", "nobody", "operator", "alice"))
    return directory


@pytest.fixture(scope="session")
def other_cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates from a different CA, with the same names: must never be trusted."""
    directory = tmp_path_factory.mktemp("other-certs")
    init_certs(directory)
    return directory
