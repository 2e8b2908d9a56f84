#!/usr/bin/env bash
# Runs on the GPU machine, from the bundle scripts/device_bundle.sh makes (copied there as
# run.sh): the GPU tests (every stdlib optimizer on CUDA against the CPU, policies, checkpoints,
# streams, devices), then bench/gpu_bench.py against PyTorch in the same run. Built for a lease
# of minutes: one call does everything, each part under its own time limit, and every log lands
# in $OUT (the device tool's folder that comes back; ./out elsewhere) even when a part crashes
# or times out. Exit status: non-zero when the tests failed or the benchmark did.
#
#   bash build-device/bundle/run.sh [benchmark arguments, e.g. --only adamw,muon]
#   OPAL_TEST_TIMEOUT=300 OPAL_BENCH_TIMEOUT=240   # seconds (the defaults)
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/env.sh" || exit 1  # $out, the library path, the host compiler (scripts/device_env.sh)

# The GPU tests, whole; after a crash or a time-out, each test case on its own, so that one
# crash does not hide the rest.
t0=$(date +%s)
timeout "${OPAL_TEST_TIMEOUT:-300}" "$here/bin/opal_gpu_tests" --duration=true >"$out/gpu_tests.log" 2>&1
rc=$?
log "GPU tests: exit $rc in $(($(date +%s) - t0)) s"
grep -E "^\[doctest\] (test cases|assertions|Status)" "$out/gpu_tests.log" | tee -a "$out/summary.txt"
grep -B2 -A12 -E "ERROR:|FATAL ERROR|CHECK.*FAILED|REQUIRE.*FAILED" "$out/gpu_tests.log" | head -150
if [ "$rc" = 77 ]; then log "FAILED: no CUDA device could be used (gpu_tests.log)"; fi
if [ "$rc" -ge 124 ]; then
  log "the whole run crashed or timed out: each test case on its own (up to 120 s)"
  deadline=$(($(date +%s) + 120))
  "$here/bin/opal_gpu_tests" -ltc --no-version 2>/dev/null | grep -vE '^\[doctest\]|^=+$|^$' >"$out/cases.txt"
  while IFS= read -r name; do
    [ "$(date +%s)" -ge "$deadline" ] && { log "out of time for the cases"; break; }
    esc=${name//,/\\,}
    timeout 60 "$here/bin/opal_gpu_tests" "--test-case=$esc" >>"$out/cases.log" 2>&1
    crc=$?
    [ "$crc" != 0 ] && log "case exit $crc: $name"
  done <"$out/cases.txt"
fi

# The benchmark (needs no host compiler).
t0=$(date +%s)
timeout "${OPAL_BENCH_TIMEOUT:-240}" python3 -u "$here/bench/gpu_bench.py" --lib "$here/lib/libopal.so" "$@" 2>&1 | tee "$out/bench.log"
brc=${PIPESTATUS[0]}
log "benchmark: exit $brc in $(($(date +%s) - t0)) s"
cat "$out/summary.txt"
[ "$rc" = 0 ] && [ "$brc" = 0 ]
