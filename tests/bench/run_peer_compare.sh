#!/usr/bin/env bash
# Measures logmesh interleaved with its peers (etcd 3.4, NATS JetStream, ...) in one run of the
# shared peer harness, with the same load shape and CPU accounting for every system.
#   tests/bench/run_peer_compare.sh [WORKDIR]     # default: $HOME/.cache/logmesh-peer-bench
# Environment: SYSTEMS [etcd nats-sync sut], REPS [1], PHYS [0], WINDOW, OUT, ... (run_all.sh's);
# SUT_DRIVER [logmesh]: `logmesh` writes with one unary call per write (Produce, ProduceBatch),
# `logmesh-stream` gives each caller its own ProduceStream / ProduceBatchStream.
# The harness takes drivers only from its own loadgen.py, so this copies the harness to WORKDIR
# (as ../shared/bench/run-peers.sh does), renames its loadgen.py to loadgen_peers.py, drops in
# peer_driver/loadgen.py (which registers the `logmesh` driver) and logmesh_driver.py, and
# generates the log.v1 / Admin stubs the driver needs with the harness's own protoc.
# Nothing is written into shared/ or into this repository.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SHARED=${SHARED_BENCH:-$(cd "$REPO/../shared/bench" && pwd)}
WORK=${1:-${HOME}/.cache/logmesh-peer-bench}
mkdir -p "$WORK"
rm -rf "$WORK/peers.new"
cp -r "$SHARED/peers" "$WORK/peers.new"
chmod -R u+w "$WORK/peers.new"
mv "$WORK/peers.new/loadgen.py" "$WORK/peers.new/loadgen_peers.py"
cp "$HERE/peer_driver/loadgen.py" "$HERE/peer_driver/logmesh_driver.py" "$WORK/peers.new/"
rm -rf "$WORK/peers" && mv "$WORK/peers.new" "$WORK/peers"
"$WORK/peers/setup.sh"
"$WORK/.venv/bin/python" -m grpc_tools.protoc -I"$REPO/proto" --python_out="$WORK/peers/gen" \
  log/v1/log.proto logmesh/v1/admin.proto
export SYSTEMS=${SYSTEMS:-"etcd nats-sync sut"}
export REPS=${REPS:-1}
export PHYS=${PHYS:-0}
export SUT_LAUNCHER="$REPO/.venv/bin/python $HERE/peer_driver/launcher.py"
export SUT_DRIVER=${SUT_DRIVER:-logmesh}  # logmesh-stream: each caller on its own stream
export SUT_LABEL=${SUT_LABEL:-$SUT_DRIVER}
exec "$WORK/peers/run_all.sh"
