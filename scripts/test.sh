#!/usr/bin/env bash
# Sets up, builds and runs every test (CTest). GPU-only tests carry the `gpu` label and are
# skipped without a device; there are none yet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)"
