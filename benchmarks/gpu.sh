#!/usr/bin/env bash
# The headline benchmarks on a CUDA machine in one go (about 10 minutes on one GPU), figures to
# a JSON file: RBM 784-500 epoch CD-1 / PCD-1, AIS 784-500 at 1,000 chains, VAE epoch,
# IS k=5,000 on 1,000 test images (see benchmarks/bench_gpu.py).
#
#   bash benchmarks/gpu.sh                      # CUDA, writes runs/gpu.json
#   bash benchmarks/gpu.sh --device cpu --tiny --out /tmp/gpu.json   # CPU test of the script
#
# Run from the repository root, with the project's environment active.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
exec timeout "${PYROGEN_GPU_TIMEOUT:-900}" python benchmarks/bench_gpu.py "$@"
