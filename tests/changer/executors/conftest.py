import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


@pytest.fixture(scope="module")
def ray_cluster():
    """A real two-node Ray cluster on loopback, one per test module (a module may kill a node)."""
    from local_cluster import LocalRayCluster

    os.environ.pop("RAY_ADDRESS", None)
    with LocalRayCluster(nodes=2, cpus_per_node=1, pythonpath=[str(ROOT), str(HERE)]) as cluster:
        yield cluster
