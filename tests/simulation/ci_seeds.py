"""The seed budget CI runs (test_simulation.py), shared with test_planted_bugs.py so that
"caught within the CI budget" means exactly these seeds and ticks."""

from __future__ import annotations

CI_SEED_START = 0
CI_SEED_COUNT = 400
CI_SAFETY_TICKS = 600

CI_SEEDS = range(CI_SEED_START, CI_SEED_START + CI_SEED_COUNT)
