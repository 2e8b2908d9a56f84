# Sourced by the bundle's scripts on the GPU machine (scripts/device_run.sh, bench/gpu_tuning.sh):
# $out (the device tool's $OUT, ./out elsewhere), the bundle's libraries first on the library
# path, the CUDA libraries the plugin links (the machine's toolkit, else PyTorch's wheels), and a
# host compiler for the CPU reference kernels. Needs $here (the bundle). Returns 1 when the CUDA
# libraries cannot be found.
out="${OUT:-$here/out}"
mkdir -p "$out"
export OPAL_STDLIB="$here/stdlib" OPAL_CUDA_PLUGIN="$here/lib/libopal_cuda.so"
export OPAL_CACHE_DIR="${OPAL_CACHE_DIR:-${TMPDIR:-/tmp}/opal-kernel-cache}"
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
log() { echo "run.sh: $*" | tee -a "$out/summary.txt"; }

# The machine: the GPU, and the compiler the CPU reference kernels need.
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 && head -12 "$out/nvidia-smi.txt"
if ! command -v "${OPAL_CXX:-c++}" >/dev/null; then
  for c in g++ clang++; do command -v $c >/dev/null && export OPAL_CXX=$c && break; done
fi
log "host compiler: $(${OPAL_CXX:-c++} --version 2>&1 | head -1)"

# The CUDA libraries the plugin links (the machine's toolkit, else PyTorch's wheels).
missing() { ldd "$here/lib/libopal_cuda.so" | grep "not found"; }
if missing >/dev/null; then
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
           $(find /usr/local /opt /usr/lib -name 'libnvrtc.so.*' -o -name 'libcudart.so.*' -o -name 'libcublas.so.*' \
               -o -name 'libcusolver.so.*' 2>/dev/null | xargs -r -n1 dirname | sort -u); do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
    missing >/dev/null || break
  done
fi
ldd "$here/lib/libopal_cuda.so" >"$out/ldd.txt" 2>&1
if missing; then log "FAILED: the CUDA libraries above are not on this machine"; return 1; fi

