#!/usr/bin/env bash
# The GPU benchmark in one command, on a machine with an NVIDIA GPU, CUDA and PyTorch:
# builds (unless OPAL_NO_BUILD=1: a build folder carried from elsewhere), runs the GPU tests,
# then bench/gpu_bench.py (Opal vs PyTorch, ratios from the same run). Extra arguments go to
# the benchmark (e.g. --only adamw,muon).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${OPAL_NO_BUILD:-0}" != 1 ]; then bash scripts/build.sh; fi
export OPAL_STDLIB="$PWD/stdlib" OPAL_CACHE_DIR="${OPAL_CACHE_DIR:-$PWD/build/kernel-cache}"
(cd build && ctest -L gpu --output-on-failure) || echo "bench_gpu.sh: GPU tests failed (benchmarking anyway)"
python3 bench/gpu_bench.py --lib build/libopal.so "$@"
