"""Repository-wide pytest setup: quiet gRPC's C core, whose INFO lines (GOAWAY on a stopped
node, reconnects) are expected in tests that stop servers and only bury real failures."""

import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
