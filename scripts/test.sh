#!/usr/bin/env bash
# Sets up, builds and runs every test: the plain build (CTest), then the same suite built with
# clang + AddressSanitizer + UndefinedBehaviorSanitizer, then a short run of each fuzz target.
# GPU-only tests carry the `gpu` label and are skipped without a device.
# OPAL_FUZZ_SECONDS (default 6: CI must stay under 20 minutes; the crash corpus replays in CTest) sets the fuzz runs' length; 0 skips them.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/build.sh all opal_benches  # the benchmarks compile too (they run by hand: README)
(cd build && ctest --output-on-failure -j"$(nproc)")
echo "test.sh: plain suite passed ($((SECONDS - start)) s)"

bash scripts/build_san.sh
# the kernels too are compiled with clang, so one OpenMP runtime (libomp) serves the process
# (without clang 14's OpenMP optimization pass: a third of each kernel's compile, and the
# suite's kernel compiles are most of its time); the Python module is not built here (an
# instrumented extension cannot load into python3)
(cd build-san && OPAL_CXX=clang++ OPAL_CXXFLAGS="-mllvm -openmp-opt-disable" ctest --output-on-failure -j"$(nproc)")
echo "test.sh: sanitizer suite passed ($((SECONDS - start)) s)"

secs=${OPAL_FUZZ_SECONDS:-6}
if [ "$secs" -gt 0 ]; then
  for t in spec safetensors journal; do bash scripts/fuzz.sh "$t" "$secs"; done
fi
echo "test.sh: all passed ($((SECONDS - start)) s)"
