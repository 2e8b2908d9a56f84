#!/usr/bin/env bash
# Sets up, configures and builds Opal into build/ (the CUDA NVRTC test is built when
# /usr/local/cuda is present; everything else needs no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOPAL_WERROR=ON -DCUDAToolkit_ROOT=/usr/local/cuda >/dev/null
cmake --build build -j"$(nproc)"
