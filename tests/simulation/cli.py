"""Command line of the simulator: run seeds, print one line each and a summary.

    python tests/simulation/cli.py --seeds N --seed-start S [--ticks T] [--plant BUG]
        [--storage memory|engine]

Exit status 1 if any seed violated a property (each failure line names the seed and
the replay command), 0 otherwise. `make sim SEEDS=N SEED_START=S` calls exactly this.
Runs as a plain script (it puts tests/ on sys.path itself) or as `simulation.cli`.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulation.errors import SimulationFailedError
from simulation.options import SAFETY_TICKS_DEFAULT, STORAGE_MODES, StorageMode
from simulation.planted import PLANTED_BUGS, PLANTED_ENGINE_BUGS
from simulation.simulator import run_seed


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the deterministic Raft simulator.")
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--seed-start", type=int, default=0, help="the first seed")
    parser.add_argument(
        "--ticks",
        type=int,
        default=SAFETY_TICKS_DEFAULT,
        help="ticks of the safety phase (faults and workload) per seed",
    )
    parser.add_argument(
        "--plant",
        choices=sorted(PLANTED_BUGS | PLANTED_ENGINE_BUGS),
        help="patch a known Raft bug into the core, or a storage bug into the engine "
        "(those need --storage engine), to see the checkers catch it",
    )
    parser.add_argument(
        "--storage",
        choices=STORAGE_MODES,
        default="memory",
        help="each node's disk: MemoryStorage, or the real log engine on a simulated "
        "file system that crashes tear",
    )
    parser.add_argument("--stop-on-failure", action="store_true", help="stop at the first failure")
    args = parser.parse_args(argv)
    if args.plant in PLANTED_ENGINE_BUGS and args.storage != "engine":
        parser.error(f"--plant {args.plant} is a storage bug: add --storage engine")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    bugs = PLANTED_BUGS | PLANTED_ENGINE_BUGS
    plant: AbstractContextManager[None] = bugs[args.plant]() if args.plant else nullcontext()
    storage: StorageMode = args.storage
    failures: list[int] = []
    ticks_total = 0
    started_s = time.monotonic()  # for the summary only: runs never read a clock
    with plant:
        for seed in range(args.seed_start, args.seed_start + args.seeds):
            try:
                result = run_seed(seed, args.ticks, storage)
            except SimulationFailedError as failure:
                failures.append(seed)
                ticks_total += failure.tick
                plant_hint = f" --plant {args.plant}" if args.plant else ""
                print(f"FAIL {failure}{plant_hint}", flush=True)
                if args.stop_on_failure:
                    break
                continue
            ticks_total += result.ticks
            print(result.line(), flush=True)
    elapsed_s = time.monotonic() - started_s
    ran = len(range(args.seed_start, args.seed_start + args.seeds))
    print(
        f"summary: {ran} seeds from {args.seed_start}, {ticks_total} simulated ticks, "
        f"{len(failures)} failed{': ' + ' '.join(map(str, failures)) if failures else ''} "
        f"({elapsed_s:.1f}s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
