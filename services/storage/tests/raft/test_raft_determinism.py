"""Determinism (DESIGN §8: "one seed replays a run exactly"): the core's output depends
only on its inputs and its rng, not on set iteration order (PYTHONHASHSEED) or time."""

import hashlib
import subprocess
import sys
from pathlib import Path

from raft_test_net import Net

SCENARIO = """
import sys
sys.path.insert(0, {here!r})
from raft_test_net import Net
from logmesh_storage.raft import ConfChange, ConfChangeType
net = Net(["a", "b", "c", "d", "e"], learners=["l"], seed=5)
net.tick(times=40)
leader = net.leader()
net.propose(leader, b"x", b"y")
net.nodes[leader].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, "m"), 0)
net.isolate(leader)
net.tick(times=40)
net.heal()
net.tick(times=10)
print(repr(net.sent))
"""


def _trace(hash_seed: str) -> str:
    script = SCENARIO.format(here=str(Path(__file__).parent))
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONHASHSEED": hash_seed},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return hashlib.sha256(result.stdout.encode()).hexdigest()


def test_same_seed_same_messages_in_process() -> None:
    traces = []
    for _ in range(2):
        net = Net(["a", "b", "c"], seed=11)
        net.tick(times=40)
        net.propose(net.leader(), b"x")
        traces.append(repr(net.sent))
    assert traces[0] == traces[1]


def test_message_order_does_not_depend_on_hash_seed() -> None:
    """Configurations are frozensets: iterating one unsorted would reorder messages
    from one process to the next and break replay."""
    assert _trace("1") == _trace("2") == _trace("3")
