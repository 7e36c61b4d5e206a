"""The seeded simulator over a fixed CI seed set: every seed must keep every safety
property through the fault phase, then converge once healed, losing nothing
acknowledged. A failure names the seed and `make sim SEEDS=1 SEED_START=<seed>`."""

from __future__ import annotations

import pytest
from logmesh_storage.raft.messages import Message

from simulation.ci_seeds import CI_SAFETY_TICKS, CI_SEEDS
from simulation.errors import InvariantViolationError, SimulationFailedError
from simulation.options import SAFETY_TICKS_DEFAULT, options_for_seed
from simulation.simulator import Simulator, run_seed

_CHUNK = 20  # seeds per test case: progress shows, and a failure names its chunk


@pytest.mark.parametrize(
    "first_seed", range(CI_SEEDS.start, CI_SEEDS.stop, _CHUNK), ids=lambda s: f"seeds{s}+"
)
def test_ci_seeds_keep_raft_safe_and_converge(first_seed: int) -> None:
    for seed in range(first_seed, min(first_seed + _CHUNK, CI_SEEDS.stop)):
        result = run_seed(seed, CI_SAFETY_TICKS)
        assert result.ticks >= CI_SAFETY_TICKS
        assert result.terms >= 1, f"seed {seed}: no leader was ever elected"


# Seeds that once found a bug, kept so the bug stays fixed.
REGRESSION_SEEDS = {
    10147: "a follower sent a term-t acceptance after a term-t+1 leader truncated those entries",
}


@pytest.mark.parametrize("seed", sorted(REGRESSION_SEEDS))
def test_regression_seeds_stay_safe(seed: int) -> None:
    result = run_seed(seed, CI_SAFETY_TICKS)
    assert result.ticks >= CI_SAFETY_TICKS, REGRESSION_SEEDS[seed]


def test_a_seed_replays_exactly() -> None:
    first, second = run_seed(7, 300), run_seed(7, 300)
    assert first == second


def test_runs_do_real_work() -> None:
    """Guards against a simulator that passes because nothing happens."""
    results = [run_seed(seed, 300) for seed in range(8)]
    assert sum(r.acknowledged for r in results) > 100
    assert sum(r.crashes for r in results) > 0
    assert max(r.terms for r in results) > 1
    assert sum(r.stats["reads"] for r in results) > 0


def _forged_failure(seed: int, safety_ticks: int) -> SimulationFailedError:
    simulator = Simulator(seed, options_for_seed(seed, safety_ticks))
    original = simulator.cluster.deliver

    def deliver_and_forge(message: Message) -> None:
        original(message)
        if simulator.cluster.now_tick > 20:
            raise InvariantViolationError("forged", "raised by the test")

    simulator.cluster.deliver = deliver_and_forge  # type: ignore[method-assign]
    with pytest.raises(SimulationFailedError) as failure:
        simulator.run()
    return failure.value


def test_failure_message_names_seed_and_replay_command() -> None:
    failure = _forged_failure(5, SAFETY_TICKS_DEFAULT)
    assert failure.seed == 5
    assert failure.property_name == "forged"
    assert "seed 5 failed at tick 21" in str(failure)
    assert "(replay: make sim SEEDS=1 SEED_START=5)" in str(failure)


def test_replay_command_carries_a_non_default_tick_count() -> None:
    failure = _forged_failure(6, 50)
    assert "cli.py --seeds 1 --seed-start 6 --ticks 50" in str(failure)
