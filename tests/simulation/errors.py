"""Errors the simulator raises. A violation is a finding about the Raft core (or about
the simulator itself): it is never caught inside the simulation, only reported.

Each message says which property broke and how to replay the run.
"""

from __future__ import annotations


class InvariantViolationError(Exception):
    """A checker saw a Raft safety or liveness property broken.

    `property_name` names the property (e.g. "election safety"); `detail` says what
    was seen. The runner wraps it in SimulationFailedError, which adds the seed.
    """

    def __init__(self, property_name: str, detail: str) -> None:
        self.property_name = property_name
        self.detail = detail
        super().__init__(f"{property_name} violated: {detail}")


class SimulationFailedError(Exception):
    """A seeded run failed: a checker fired, or the core raised (an AssertionError or
    any unexpected exception). The message names the seed, the tick and the command
    that replays the run exactly; the original exception is the __cause__."""

    def __init__(
        self, seed: int, tick: int, cause: BaseException, safety_ticks: int | None = None
    ) -> None:
        """`safety_ticks`: the run's safety phase, if not the default (the replay
        command must then say it)."""
        self.seed = seed
        self.tick = tick
        self.cause = cause
        self.replay_command = (
            f"make sim SEEDS=1 SEED_START={seed}"
            if safety_ticks is None
            else f"python tests/simulation/cli.py --seeds 1 --seed-start {seed} "
            f"--ticks {safety_ticks}"
        )
        self.property_name = (
            cause.property_name
            if isinstance(cause, InvariantViolationError)
            else f"core raised {type(cause).__name__}"
        )
        super().__init__(
            f"seed {seed} failed at tick {tick}: {cause!s} (replay: {self.replay_command})"
        )
