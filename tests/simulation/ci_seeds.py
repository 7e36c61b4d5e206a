"""The seed budget CI runs (test_simulation.py), shared with test_planted_bugs.py so that
"caught within the CI budget" means exactly these seeds and ticks."""

from __future__ import annotations

CI_SEED_START = 0
CI_SEED_COUNT = 400
CI_SAFETY_TICKS = 600

CI_SEEDS = range(CI_SEED_START, CI_SEED_START + CI_SEED_COUNT)

# Engine mode (test_simulation_engine.py): the real log engine on a crashing simulated
# disk costs about twice the time of a memory run per seed; this set (and the
# other engine tests) adds about 35 s of CPU.
ENGINE_CI_SEED_START = 0
ENGINE_CI_SEED_COUNT = 200
ENGINE_CI_SEEDS = range(ENGINE_CI_SEED_START, ENGINE_CI_SEED_START + ENGINE_CI_SEED_COUNT)
