"""Make the shared builders (log_helpers.py) importable by the log engine tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
