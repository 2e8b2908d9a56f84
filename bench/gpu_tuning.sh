#!/usr/bin/env bash
# A GPU experiment in one call, from the device bundle (copied there as tuning.sh): which launch
# bounds make the elementwise kernels fastest ($OPAL_CUDA_MIN_BLOCKS, read by the CUDA emitter,
# against its measured default), where the q8 and all-bf16 AdamW kernels stall (Nsight Compute),
# and where a SOAP step's time goes (torch.profiler). Notes and results: bench/gpu_notes.md.
#
#   bash build-device/bundle/tuning.sh       # logs in $OUT (./out elsewhere)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh" || exit 1
bench() { timeout 120 python3 -u "$here/bench/gpu_bench.py" --lib "$here/lib/libopal.so" "$@"; }

# 1. the 16-bit and q8 paths are still bit for bit the CPU's
timeout 120 "$here/bin/opal_gpu_tests" -tc="16-bit*,q8*,elementwise*" >"$out/gpu_tests.log" 2>&1
log "GPU tests (16-bit, q8, elementwise): exit $?"
grep -E "^\[doctest\] (test cases|assertions)|ERROR" "$out/gpu_tests.log" | head -20 | tee -a "$out/summary.txt"

# 2. the variants, one process each (the kernel text, and so the disk cache's key, differs);
# the first with the peers, for the ratios of the same run
first=1
for n in default 0 4 5 6 8; do
  peer=--no-peer
  [ "$first" = 1 ] && peer= && first=0
  echo "== OPAL_CUDA_MIN_BLOCKS=$n" | tee -a "$out/variants.txt"
  if [ "$n" = default ]; then (unset OPAL_CUDA_MIN_BLOCKS; bench --only adamw,adamw_bf16,adamw_q8 $peer); else
    OPAL_CUDA_MIN_BLOCKS=$n bench --only adamw,adamw_bf16,adamw_q8 $peer; fi 2>&1 | tee -a "$out/variants.txt"
done

# 3. Nsight Compute on one launch of the q8 and the all-bf16 kernels (counters only: clocks as
# found)
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
if [ -n "$ncu" ]; then
  for what in adamw_q8 adamw_bf16; do
    timeout 150 "$ncu" --clock-control none -k regex:opal_r0_k0 -s 3 -c 1 --section SpeedOfLight --section Occupancy --section LaunchStats \
      --section WarpStateStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
      python3 "$here/bench/gpu_bench.py" --lib "$here/lib/libopal.so" --only "$what" --no-peer --iters 1 >"$out/ncu_$what.txt" 2>&1
    log "ncu $what: exit $?"
  done
else
  log "no ncu on this machine"
fi

# 4. a SOAP step, kernel by kernel
timeout 120 python3 -u "$here/bench/gpu_profile.py" --lib "$here/lib/libopal.so" --spec soap --every 10 --steps 10 >"$out/profile_soap.txt" 2>&1
log "profile soap: exit $?"
head -45 "$out/profile_soap.txt"
tail -12 "$out/profile_soap.txt"
cat "$out/variants.txt"
cat "$out/summary.txt"
