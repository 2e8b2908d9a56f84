#!/usr/bin/env bash
# Builds the device bundle: what a GPU machine needs to run the GPU tests and the benchmark
# without building or installing anything (issue 18, item 2). The machine has CUDA 13, cmake and
# PyTorch, and none of Debian's libraries and no network, so the build is Release, for any
# x86-64 CPU (OPAL_NATIVE=OFF), with fmt header-only and libstdc++ linked in, and stripped:
#
#   bash scripts/device_bundle.sh            # -> build-device/bundle (checked to be under 64 MiB)
#   # carry build-device/bundle to the device machine, then there:
#   bash build-device/bundle/run.sh          # GPU tests, then bench/gpu_bench.py (scripts/device_run.sh)
#
# The bundle: lib/libopal.so* (the C ABI, for the benchmark's ctypes), lib/libopal_cuda.so (the
# plugin), lib/libgomp.so.1, bin/opal_gpu_tests, stdlib/, bench/gpu_bench.py, bench/gpu_profile.py, run.sh (the GPU
# tests and the benchmark), tuning.sh (bench/gpu_tuning.sh, an experiment) and env.sh. The GPU
# tests compare CUDA with the CPU backend, whose kernels are compiled at run time by the
# machine's C++ compiler (`c++`, or $OPAL_CXX): the device machine needs one for the GPU tests (the
# benchmark needs none).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-device
# (-Wno-restrict: GCC 12 at -O3 warns falsely inside std::string's operator+, GCC PR 105329)
mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DOPAL_NATIVE=OFF -DOPAL_FMT_HEADER_ONLY=ON -DOPAL_STATIC_CXX=ON -DOPAL_WERROR=ON \
  -DCMAKE_CXX_FLAGS=-Wno-restrict > "$build/configure.log" || { cat "$build/configure.log"; exit 1; }
if ! grep -q "OPAL_CUDA:BOOL=ON" "$build/CMakeCache.txt"; then
  echo "device_bundle.sh: this machine's build has no CUDA backend (no CUDA toolkit found): nothing to carry" >&2
  exit 1
fi
cmake --build "$build" -j "$(nproc)" --target opal_c opal_cuda opal_gpu_tests
out="$build/bundle"
rm -rf "$out"
mkdir -p "$out/lib" "$out/bin" "$out/bench"
cp -P "$build"/libopal.so* "$out/lib/"
cp "$build/libopal_cuda.so" "$out/lib/"
cp "$build/tests/opal_gpu_tests" "$out/bin/"
cp -r stdlib "$out/stdlib"
cp bench/gpu_bench.py bench/gpu_profile.py "$out/bench/"
cp "$(gcc -print-file-name=libgomp.so.1)" "$out/lib/"  # OpenMP for the CPU kernels (PyTorch's own is renamed)
strip --strip-unneeded "$out"/lib/libopal.so.* "$out/lib/libopal_cuda.so" "$out/bin/opal_gpu_tests"
cp scripts/device_run.sh "$out/run.sh"  # the GPU tests, then the benchmark, logs to $OUT
cp scripts/device_env.sh "$out/env.sh"  # (sourced by run.sh and tuning.sh)
cp bench/gpu_tuning.sh "$out/tuning.sh"  # an experiment: variants, Nsight Compute, a profile
chmod +x "$out/run.sh" "$out/tuning.sh"
size=$(du -sb "$out" | cut -f1)
echo "device_bundle.sh: $out is $((size / 1024 / 1024)) MiB"
if [ "$size" -ge $((64 * 1024 * 1024)) ]; then
  echo "device_bundle.sh: over the 64 MiB a device run can carry" >&2
  exit 1
fi
# what our files load: libc, libm and the loader (the system's), CUDA's (the machine's), and
# libgomp (carried: run.sh puts lib/ first on the library path); anything else is an error
for f in "$out"/lib/libopal.so.* "$out/lib/libopal_cuda.so" "$out/bin/opal_gpu_tests"; do
  bad=$(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
        grep -vE '^(libc|libm|ld-linux-x86-64)\.so|^libgomp\.so\.1$|^lib(cudart|cublas|cublasLt|cusolver|nvrtc)\.so' || true)
  if [ -n "$bad" ]; then
    echo "device_bundle.sh: $f needs $bad, which the device machine may lack" >&2
    exit 1
  fi
done
