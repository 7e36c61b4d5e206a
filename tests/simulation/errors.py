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
        self,
        seed: int,
        tick: int,
        cause: BaseException,
        safety_ticks: int | None = None,
        storage: str = "memory",
    ) -> None:
        """`safety_ticks`: the run's safety phase, if not the default; `storage`: the
        storage mode, if not memory (the replay command must then say them)."""
        self.seed = seed
        self.tick = tick
        self.cause = cause
        self.replay_command = _replay_command(seed, safety_ticks, storage)
        self.property_name = (
            cause.property_name
            if isinstance(cause, InvariantViolationError)
            else f"core raised {type(cause).__name__}"
        )
        super().__init__(
            f"seed {seed} failed at tick {tick}: {cause!s} (replay: {self.replay_command})"
        )


def _replay_command(seed: int, safety_ticks: int | None, storage: str) -> str:
    if safety_ticks is None and storage == "memory":
        return f"make sim SEEDS=1 SEED_START={seed}"
    command = f"python tests/simulation/cli.py --seeds 1 --seed-start {seed}"
    if storage != "memory":
        command += f" --storage {storage}"
    if safety_ticks is not None:
        command += f" --ticks {safety_ticks}"
    return command


class StateFileDamagedError(Exception):
    """A Raft state file of the engine-backed storage (hard state, configurations) does
    not decode. It is replaced atomically (state_files.write_atomic), so no crash can
    leave it half-written: this is a bug in the atomic write or in the simulated file
    system's crash model. Replay the seed and inspect the file named here."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        super().__init__(
            f"state file {path} is damaged: {detail}; it is written atomically, so a crash "
            f"cannot explain this: check state_files.write_atomic and MemoryFileSystem.crash"
        )
