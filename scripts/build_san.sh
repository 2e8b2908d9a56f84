#!/usr/bin/env bash
# Configures and builds the sanitizer build in build-san/: clang, AddressSanitizer +
# UndefinedBehaviorSanitizer (every report fatal) and libFuzzer's instrumentation, so the same
# folder runs the test suite (ctest, as scripts/test.sh runs it) and the fuzz targets (scripts/fuzz.sh).
# -O1: sanitized code runs fast enough, and builds in a fraction of the time -O2 takes.
# -openmp-opt-disable: clang 14's OpenMP optimization pass took a third of the compile time of
# the Eigen-heavy files (34 of 98 s for runtime/cpu/linalg.cpp, -ftime-trace), for no gain here.
# Usage: scripts/build_san.sh [TARGET...]   (default: everything)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/configure.sh build-san -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1 -mllvm -openmp-opt-disable" \
      "-DCMAKE_C_FLAGS_DEBUG=-O1 -g1 -mllvm -openmp-opt-disable" \
      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DOPAL_FUZZ=ON -DOPAL_NATIVE=OFF \
      -DCUDAToolkit_ROOT=/usr/local/cuda
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build build-san -j"$(nproc)" "${targets[@]}"
