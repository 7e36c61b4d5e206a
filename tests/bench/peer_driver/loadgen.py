"""The peer harness's load generator with a `logmesh` driver added.

run_peer_compare.sh copies the harness (`../shared/bench/peers/`) to a work folder, renames
its loadgen.py to loadgen_peers.py and puts this file and logmesh_driver.py beside it, so
run_shape.sh's `loadgen.py --system logmesh` runs the harness's own measurement loops (same load
shape, same CPU accounting, same JSON lines) with logmesh's driver. The harness's summarize.py
imports `median_record` from here. This file may not change any measurement: it only registers
the driver.
"""

from __future__ import annotations

import loadgen_peers  # type: ignore[import-not-found]  # the harness's loadgen.py, renamed
from logmesh_driver import LogmeshDriver, LogmeshStreamDriver

median_record = loadgen_peers.median_record
loadgen_peers.DRIVERS["logmesh"] = LogmeshDriver
loadgen_peers.DRIVERS["logmesh-stream"] = LogmeshStreamDriver

if __name__ == "__main__":
    loadgen_peers.main()
