"""Make the in-test network helper (raft_test_net.py) importable by the test modules."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
