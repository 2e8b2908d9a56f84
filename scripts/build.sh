#!/usr/bin/env bash
# Sets up, configures and builds Opal into build/ (the CUDA NVRTC test is built when
# /usr/local/cuda is present; everything else needs no GPU).
# Usage: scripts/build.sh [TARGET...]   (default: everything)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# -g1: line tables (backtraces name files and lines) at a third less compile time than -g
bash scripts/configure.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
      "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" -DOPAL_WERROR=ON -DCUDAToolkit_ROOT=/usr/local/cuda
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build build -j"$(nproc)" "${targets[@]}"
