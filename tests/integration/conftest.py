"""Fixtures for integration tests: real storage nodes on loopback, started by logmesh.cluster.

`storage_cluster` is one 3-node cluster shared by a test module (tests that must not disturb it
only read and write); tests that kill, pause or stop nodes make their own with
`make_storage_cluster`. Every gRPC call in these tests has a deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from logmesh.cluster import StorageCluster


@pytest.fixture(scope="module")
def storage_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageCluster]:
    with StorageCluster(tmp_path_factory.mktemp("storage")) as cluster:
        yield cluster


@pytest.fixture
def make_storage_cluster(tmp_path: Path) -> Iterator[Callable[..., StorageCluster]]:
    made: list[StorageCluster] = []

    def make(**kwargs: object) -> StorageCluster:
        cluster = StorageCluster(tmp_path / f"cluster{len(made)}", **kwargs)  # type: ignore[arg-type]
        made.append(cluster)
        return cluster.start()

    yield make
    for cluster in made:
        cluster.stop()
