"""The checkers are shown to work: each test plants a known Raft bug into the core
(patching it for the test only) and asserts that the simulator reports a violation
within the CI seed budget (simulation.ci_seeds). The seed that caught each bug when
this was written is in the test's docstring; the assertion does not depend on it,
only on the budget."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest
from hypothesis import Phase, settings

from simulation.ci_seeds import CI_SAFETY_TICKS, CI_SEEDS
from simulation.errors import InvariantViolationError, SimulationFailedError
from simulation.planted import (
    PLANTED_BUGS,
    ack_before_durable,
    commit_by_counting_replicas,
    no_step_down_on_higher_term,
    vote_without_log_check,
)
from simulation.simulator import run_seed
from simulation.test_cluster_stateful import RaftClusterMachine


def _first_failure(plant: Callable[[], AbstractContextManager[None]]) -> SimulationFailedError:
    with plant():
        for seed in CI_SEEDS:
            try:
                run_seed(seed, CI_SAFETY_TICKS)
            except SimulationFailedError as failure:
                print(f"planted bug caught: {failure}")
                return failure
    pytest.fail(f"planted bug not caught in CI seeds {CI_SEEDS.start}..{CI_SEEDS.stop - 1}")


def test_committing_an_earlier_term_entry_by_counting_is_caught() -> None:
    """Figure 8. First caught at seed 1 (commit rule: the leader of term 6 committed
    index 6, of an earlier term, by counting replicas). Before the commit-rule check
    existed, the loss it leads to was caught at seed 62 as leader completeness."""
    failure = _first_failure(commit_by_counting_replicas)
    assert failure.property_name in {
        "commit rule",
        "leader completeness",
        "state-machine safety",
        "no acknowledged proposal lost",
        "linearizable read",
    }


def test_granting_a_vote_without_the_log_check_is_caught() -> None:
    """§5.4.1. First caught at seed 1 (leader completeness)."""
    failure = _first_failure(vote_without_log_check)
    assert failure.property_name in {
        "leader completeness",
        "state-machine safety",
        "no acknowledged proposal lost",
        "commit rule",
        "log matching",
        "linearizable read",
    }


def test_acknowledging_an_append_before_it_is_durable_is_caught() -> None:
    """First caught at seed 0 (durability before acknowledgement)."""
    failure = _first_failure(ack_before_durable)
    assert failure.property_name in {"durability before acknowledgement", "commit rule"}


def test_a_leader_that_keeps_leading_in_a_higher_term_is_caught() -> None:
    """§5.1. First caught at seed 0: the leader sent a heartbeat in the adopted term
    before that term was durable; on other seeds as election safety (two leaders)."""
    failure = _first_failure(no_step_down_on_higher_term)
    assert failure.property_name in {
        "election safety",
        "durability before acknowledgement",
        "core raised AssertionError",
    }


@pytest.mark.parametrize("bug", sorted(PLANTED_BUGS))
def test_the_stateful_machine_catches_each_planted_bug(bug: str) -> None:
    """The hypothesis schedules (no shrinking, to stay fast) catch each bug too."""
    machine = RaftClusterMachine.TestCase
    original = machine.settings
    machine.settings = settings(original, phases=[Phase.generate], max_examples=600)
    try:
        with PLANTED_BUGS[bug](), pytest.raises((InvariantViolationError, AssertionError)):
            machine().runTest()
    finally:
        machine.settings = original
