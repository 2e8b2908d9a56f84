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
# The generated kernels are the plain suite's, from its cache (compiled by c++, as users run
# them; kernels are never instrumented): most of this suite's time was compiling them again with
# clang. libgomp, their OpenMP runtime, is preloaded so that it stays loaded (unloaded with the
# last module, its allocations would read as leaks); the suite's own code runs on libomp. The
# Python module is not built here (an instrumented extension cannot load into python3). The
# clang_kernels test of the plain suite compiles the kernels' text with clang.
rm -rf build-san/kernel-cache
cp -r build/kernel-cache build-san/kernel-cache
(cd build-san && LD_PRELOAD="$(c++ -print-file-name=libgomp.so.1)" ctest --output-on-failure -j"$(nproc)")
echo "test.sh: sanitizer suite passed ($((SECONDS - start)) s)"

secs=${OPAL_FUZZ_SECONDS:-6}
if [ "$secs" -gt 0 ]; then
  for t in spec safetensors journal; do bash scripts/fuzz.sh "$t" "$secs"; done
fi
echo "test.sh: all passed ($((SECONDS - start)) s)"
