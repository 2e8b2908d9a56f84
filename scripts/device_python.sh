#!/usr/bin/env bash
# On a GPU machine with CUDA, cmake, a compiler, pybind11 and PyTorch but none of Debian's
# packages (the device tool's machine), from the repository (the tool sends the working tree):
# builds the Python module (opal, opal.torch) and the CUDA plugin against the headers
# scripts/device_deps.sh collected here (carry build-device/deps), then runs opal.torch's CUDA
# tests and the whole Python suite under that machine's PyTorch. Logs in $OUT (./out elsewhere).
#
#   bash scripts/device_deps.sh                    # here, once
#   bash scripts/device_python.sh                  # there (carry: build-device/deps)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/out}"
mkdir -p "$out"
b="${OPAL_DEVICE_BUILD:-/tmp/opal-python-build}"
deps="$PWD/build-device/deps/cmake"
[ -d "$deps" ] || { echo "device_python.sh: no $deps (run scripts/device_deps.sh here and carry build-device/deps)" >&2; exit 1; }
pyb=$(python3 -m pybind11 --cmakedir 2>/dev/null) || pyb=""  # (pip's pybind11; else where cmake finds one)
t0=$(date +%s)
if ! cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release -DOPAL_NATIVE=OFF -DOPAL_FMT_HEADER_ONLY=ON -DCMAKE_PREFIX_PATH="$deps;$pyb" \
     -DPython_EXECUTABLE="$(command -v python3)" >"$out/python_configure.log" 2>&1; then
  tail -30 "$out/python_configure.log"
  echo "device_python.sh: FAILED to configure" >&2
  exit 1
fi
if ! cmake --build "$b" -j"$(nproc)" --target opal_python opal_cuda >"$out/python_build.log" 2>&1; then
  grep -E "error|Error" "$out/python_build.log" | head -30
  echo "device_python.sh: FAILED to build" >&2
  exit 1
fi
echo "device_python.sh: built in $(($(date +%s) - t0)) s"
export PYTHONPATH="$b/python" OPAL_STDLIB="$PWD/stdlib" OPAL_CUDA_PLUGIN="$b/libopal_cuda.so"
export OPAL_CACHE_DIR="${OPAL_CACHE_DIR:-/tmp/opal-kernel-cache}" PYTHONUNBUFFERED=1
cd tests/python
timeout "${OPAL_CUDA_TEST_TIMEOUT:-180}" python3 -m unittest -v test_cuda >"$out/test_cuda.log" 2>&1
rc=$?
tail -25 "$out/test_cuda.log"
echo "device_python.sh: test_cuda exit $rc"
timeout "${OPAL_PYTHON_SUITE_TIMEOUT:-300}" python3 -m unittest >"$out/python_suite.log" 2>&1
src=$?
grep -E "^(FAIL|ERROR):|^Ran |^OK|^FAILED" "$out/python_suite.log" | head -40
echo "device_python.sh: the Python suite exit $src (under torch $(python3 -c 'import torch; print(torch.__version__)'))"
[ "$rc" = 0 ] && [ "$src" = 0 ]
