"""The seeded simulator in engine mode: every node's Raft log is the real log engine on
a simulated disk that a crash tears (engine_disk.py). Every CI seed must keep every
safety property, converge once healed and lose nothing acknowledged; a failure names
the seed and the replay command with `--storage engine`. The runs must really go
through recovery, and the storage bugs planted into the engine must be caught."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from logmesh_storage.raft.messages import Message

from simulation.ci_seeds import CI_SAFETY_TICKS, ENGINE_CI_SEEDS
from simulation.engine_storage import EngineStats
from simulation.errors import InvariantViolationError, SimulationFailedError
from simulation.options import options_for_seed
from simulation.planted import append_without_fsync, state_file_renamed_unsynced
from simulation.simulator import Simulator, run_seed

_CHUNK = 20  # seeds per test case: progress shows, and a failure names its chunk


def _run_engine_seed(seed: int, safety_ticks: int = CI_SAFETY_TICKS) -> Simulator:
    simulator = Simulator(seed, options_for_seed(seed, safety_ticks, "engine"))
    try:
        simulator.run()
    except SimulationFailedError as failure:
        pytest.fail(str(failure), pytrace=False)  # the message is the whole story
    return simulator


@pytest.mark.parametrize(
    "first_seed",
    range(ENGINE_CI_SEEDS.start, ENGINE_CI_SEEDS.stop, _CHUNK),
    ids=lambda s: f"seeds{s}+",
)
def test_engine_ci_seeds_keep_raft_safe_and_converge(first_seed: int) -> None:
    for seed in range(first_seed, min(first_seed + _CHUNK, ENGINE_CI_SEEDS.stop)):
        result = _run_engine_seed(seed).result
        assert result.ticks >= CI_SAFETY_TICKS
        assert result.terms >= 1, f"seed {seed}: no leader was ever elected"


def test_engine_mode_goes_through_recovery_and_every_structural_operation() -> None:
    """Guards against an engine mode that passes because nothing happens to the disk:
    seeds outside the CI set, summed, must tear saves and compactions, cut torn tails,
    roll, drop and reset segments and truncate conflicting suffixes."""
    total = EngineStats()
    for seed in range(1000, 1040):
        stats = _run_engine_seed(seed, 400).engine_stats()
        assert stats is not None
        total.add(stats)
    assert total.recoveries > 100, total
    assert total.torn_saves > 5 and total.torn_compactions > 0, total
    assert total.torn_tails_cut > 2 and total.tail_bytes_cut > 0, total
    assert total.segments_rolled > 200, total
    assert total.segments_dropped > 50, total
    assert total.resets > 0, total
    assert total.suffix_truncations > 20, total


def test_an_engine_seed_replays_exactly() -> None:
    first, second = run_seed(7, 300, "engine"), run_seed(7, 300, "engine")
    assert first == second
    assert first.stats["recoveries"] > 0


def test_engine_failure_names_the_seed_and_the_engine_replay_command() -> None:
    simulator = Simulator(5, options_for_seed(5, CI_SAFETY_TICKS, "engine"))
    original = simulator.cluster.deliver

    def deliver_and_forge(message: Message) -> None:
        original(message)
        if simulator.cluster.now_tick > 20:
            raise InvariantViolationError("forged", "raised by the test")

    simulator.cluster.deliver = deliver_and_forge  # type: ignore[method-assign]
    with pytest.raises(SimulationFailedError) as failure:
        simulator.run()
    assert "seed 5 failed at tick 21" in str(failure.value)
    assert "(replay: python tests/simulation/cli.py --seeds 1 --seed-start 5 --storage engine)" in (
        str(failure.value)
    )


def _first_engine_failure(
    plant: Callable[[], AbstractContextManager[None]],
) -> SimulationFailedError:
    with plant():
        for seed in ENGINE_CI_SEEDS:
            try:
                run_seed(seed, CI_SAFETY_TICKS, "engine")
            except SimulationFailedError as failure:
                print(f"planted bug caught: {failure}")
                return failure
    pytest.fail(f"planted bug not caught in engine CI seeds {ENGINE_CI_SEEDS}")


def test_a_log_that_skips_fsync_is_caught() -> None:
    """The book's missing fsync. First caught at seed 0: a node crashed between writes
    and recovered a log shorter than the one it had acknowledged."""
    failure = _first_engine_failure(append_without_fsync)
    assert failure.property_name in {
        "a crash keeps what was synced",
        "durability before acknowledgement",
        "no acknowledged proposal lost",
        "core raised AssertionError",
    }


def test_a_state_file_renamed_before_its_fsync_is_caught() -> None:
    """First caught at seed 0: the hard state file was torn by a crash."""
    failure = _first_engine_failure(state_file_renamed_unsynced)
    assert failure.property_name in {
        "core raised StateFileDamagedError",
        "a crash keeps what was synced",
        "election safety",
        "monotonic state",
    }
