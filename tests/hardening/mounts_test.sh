#!/usr/bin/env bash
# Full disks and noexec mounts (issue 14, items 3, 4 and 17), on small tmpfs mounts in a private
# mount namespace:
#   - a kernel cache on a full disk: the compile fails saying the disk is full, leaving nothing;
#   - a kernel cache on a noexec mount: a clear error naming the file and the loader's reason,
#     from the CLI, the C ABI (opal_cpp_host) and Python alike;
#   - an ablation whose journal fills the disk: it stops with a clear error, the journal holds
#     whole lines only, and a rerun with room resumes from it.
# Usage: mounts_test.sh OPAL_BINARY OPAL_CPP_HOST [PYTHON_MODULE_DIR]
# Needs a mount namespace (root, or unprivileged user namespaces); exit 77 (skipped) without one.
set -uo pipefail
if [ -z "${OPAL_MOUNTS_NS:-}" ]; then
  for how in "-m" "-rm"; do
    if unshare $how sh -c 'd=$(mktemp -d) && mount -t tmpfs -o size=8k tmpfs "$d" && umount "$d"; rc=$?; rmdir "$d"; exit $rc' 2>/dev/null; then
      exec env OPAL_MOUNTS_NS=1 unshare $how bash "$0" "$@"
    fi
  done
  echo "mounts_test: no mount namespace here (needs root or user namespaces): skipped"
  exit 77
fi
set -e
opal=$1
host=$2
pydir=${3:-}
stdlib=$(cd "$(dirname "$0")/../../stdlib" && pwd)
export OPAL_STDLIB=$stdlib
dir=$(mktemp -d)
trap 'umount "$dir"/m/* 2>/dev/null || true; rm -rf "$dir"' EXIT
fail() { echo "mounts_test: FAILED: $*"; exit 1; }
mnt() {  # mnt NAME OPTIONS: a fresh tmpfs at $dir/m/NAME
  mkdir -p "$dir/m/$1"
  mount -t tmpfs -o "$2" tmpfs "$dir/m/$1"
}
# a spec no other test compiles, so every run below misses the cache
spec='optimizer mounts(lr = 0.01) { other: momentum(0.8) -> sign -> scale(lr) }'

# 1. the kernel cache on a disk with no room at all, then with room for the source only
for size in 8k 16k; do
  mnt "full$size" "size=$size"
  d=$dir/m/full$size
  dd if=/dev/zero of="$d/filler" bs=4k count=64 2>/dev/null || true  # fills it
  [ "$size" = 16k ] && rm "$d/filler" && dd if=/dev/zero of="$d/filler" bs=1k count=8 2>/dev/null
  rc=0; OPAL_CACHE_DIR=$d "$opal" run "$spec" --steps 2 > "$dir/out" 2>&1 || rc=$?
  [ $rc -eq 1 ] || fail "full disk ($size): exit $rc: $(cat "$dir/out")"
  grep -q "No space left on device" "$dir/out" || fail "full disk ($size): the message does not say so: $(cat "$dir/out")"
  grep -q "the disk holding the kernel cache is full" "$dir/out" || fail "full disk ($size): no hint: $(cat "$dir/out")"
  left=$(ls "$d" | grep -v '^filler$' || true)
  [ -z "$left" ] || fail "full disk ($size): left behind: $left"
done
echo "mounts_test: a full disk during a kernel compile: clear error, nothing left behind"

# 2. the kernel cache on a noexec mount
mnt noexec "size=64m,noexec"
export OPAL_CACHE_DIR=$dir/m/noexec
rc=0; "$opal" run "$spec" --steps 2 > "$dir/out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "noexec (CLI): exit $rc: $(cat "$dir/out")"
grep -q "cannot load the compiled kernels \`$OPAL_CACHE_DIR/.*\.so\`: .*failed to map segment" "$dir/out" || fail "noexec (CLI): $(cat "$dir/out")"
rc=0; "$host" --spec "$spec" --steps 2 > "$dir/out" 2>&1 || rc=$?
[ $rc -ne 0 ] || fail "noexec (C ABI): it succeeded"
grep -q "cannot load the compiled kernels .*failed to map segment" "$dir/out" || fail "noexec (C ABI): $(cat "$dir/out")"
if [ -n "$pydir" ] && [ -d "$pydir" ]; then
  PYTHONPATH=$pydir /usr/bin/python3 - "$spec" > "$dir/out" 2>&1 <<'EOF' || fail "noexec (Python): $(cat "$dir/out")"
import sys
import torch
import opal
from opal.torch import Optimizer
try:
    Optimizer([("w", torch.zeros(3, 3, requires_grad=True))], spec=sys.argv[1])
except opal.OpalError as e:
    assert "cannot load the compiled kernels" in str(e) and "failed to map segment" in str(e), str(e)
    sys.exit(0)
sys.exit("no error")
EOF
fi
unset OPAL_CACHE_DIR
echo "mounts_test: kernels on a noexec mount: a clear error from the CLI, the C ABI and Python"

# 3. an ablation whose journal fills the disk, resumed once there is room
mnt journal "size=12k"
out=$dir/m/journal/ab
cat > "$dir/grid.opal" <<'EOF'
grid fill(lr = 0.01) {
  opt = { a: sign, b: momentum(0.9) -> sign, c: adapt(0.99) }
  other: opt -> scale(lr)
  sweep lr = values(0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
  seeds = 3
}
EOF
args=(--workload linreg --steps 40 --eval-every 5 -j 2 --no-progress)
rc=0; "$opal" ablate "$dir/grid.opal" "${args[@]}" -o "$out" > "$dir/out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "full journal: exit $rc: $(tail -5 "$dir/out")"
grep -q "cannot append to the journal .*No space left on device (the disk is full)" "$dir/out" || fail "full journal: $(tail -5 "$dir/out")"
n=$(wc -l < "$out/journal.jsonl")
[ "$n" -gt 0 ] || fail "full journal: nothing was journaled"
[ -z "$(tail -c1 "$out/journal.jsonl")" ] || fail "full journal: the last line is torn"
/usr/bin/python3 -c "import json,sys; [json.loads(l) for l in open(sys.argv[1])]" "$out/journal.jsonl" || fail "full journal: a line is not JSON"
mount -o remount,size=8m "$dir/m/journal"
rc=0; "$opal" ablate "$dir/grid.opal" "${args[@]}" -o "$out" > "$dir/out" 2> "$dir/err" || rc=$?
[ $rc -eq 0 ] || fail "resume after a full journal: exit $rc: $(tail -5 "$dir/err")"
grep -q " $n taken from the journal" "$dir/err" || fail "resume: did not take the $n journaled runs: $(tail -2 "$dir/err")"
echo "mounts_test: a full disk under the journal: clear error, whole lines, resumed ($n runs kept)"
echo "mounts_test: passed"
