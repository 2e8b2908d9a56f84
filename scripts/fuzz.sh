#!/usr/bin/env bash
# Runs one libFuzzer target for a while: scripts/fuzz.sh TARGET SECONDS (TARGET: spec,
# safetensors or journal; default 60 s). Builds the clang + ASan + UBSan + libFuzzer targets in
# build-san/ (scripts/build_san.sh), keeps the growing corpus in build-san/corpus/TARGET, and
# exits non-zero on a crash, hang, leak or sanitizer report, whose input lands in
# build-san/artifacts/TARGET/ (copy it to fuzz/regressions/TARGET/ once fixed: the fuzz_replay
# test runs those in every build). docs/reliability.md.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh spec|safetensors|journal [SECONDS]}
secs=${2:-60}
case "$target" in spec|safetensors|journal) ;; *) echo "fuzz.sh: unknown target '$target' (spec, safetensors, journal)" >&2; exit 2;; esac
bash scripts/build_san.sh "fuzz_$target" >/dev/null

b=build-san
seeds=$b/seeds/$target
rm -rf "$seeds"; mkdir -p "$seeds" "$b/corpus/$target" "$b/artifacts/$target"
extra=()
case "$target" in
  spec)
    # the stdlib's declarations renamed (loaded next to the stdlib itself, the originals would
    # only be redefinitions), the examples, and every golden test's spec
    for f in stdlib/*.opal stdlib/*/*.opal; do
      sed -E 's/^(optimizer|component|fn) ([A-Za-z_][A-Za-z_0-9]*)/\1 \2_seed/' "$f" > "$seeds/$(basename "$(dirname "$f")")_$(basename "$f")"
    done
    cp examples/*.opal tests/golden/errors/*.opal tests/golden/ir/*.opal "$seeds/"
    extra=(-dict=fuzz/opal.dict -max_len=8192)
    ;;
  safetensors) export OPAL_FUZZ_SEEDS=$seeds ;;
  journal) cp fuzz/seeds/journal/* "$seeds/" ;;
esac
export OPAL_CACHE_DIR=$PWD/$b/kernel-cache OPAL_CXX=clang++
log=$b/fuzz-$target.log
echo "fuzz.sh: fuzz_$target for ${secs}s (log: $log)"
set +e
"$b/fuzz/fuzz_$target" -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
  -artifact_prefix="$b/artifacts/$target/" "${extra[@]}" "$b/corpus/$target" "$seeds" "fuzz/regressions/$target" > "$log" 2>&1
rc=$?
set -e
last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
echo "fuzz.sh: $target: ${execs:-?} executions; last status: ${last:-none}; corpus: $(ls "$b/corpus/$target" | wc -l) files"
if [ $rc -ne 0 ]; then
  echo "fuzz.sh: $target FAILED (exit $rc); the end of the log:" >&2
  tail -40 "$log" >&2
  exit $rc
fi
