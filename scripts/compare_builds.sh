#!/bin/sh
# Bit-identity across builds: steps every stdlib optimizer 12 times (a wide and a tall matrix,
# a vector, an embedding; every(10) refreshes included) with two `opal` binaries on the same
# seeded gradients, and compares the results byte for byte (parameters and every state slot;
# not the file's metadata, which lists the hyperparameters). Each binary reads its own stdlib
# (its build's default; leave OPAL_STDLIB unset).
#   scripts/compare_builds.sh OLD/opal NEW/opal
# For refactors that must not change a bit (the executable description, say): build the old
# commit in a worktree (git worktree add /tmp/old REV && cmake -S /tmp/old -B /tmp/old/build &&
# cmake --build /tmp/old/build --target opal) and run this with both binaries.
set -eu
old=$1 new=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 - "$dir" <<'PY'
import json, struct, sys
import numpy as np
out = sys.argv[1]
rng = np.random.default_rng(0)
shapes = {"blocks.0.w": [12, 8], "blocks.0.tall": [16, 6], "blocks.0.b": [8], "wte.embed": [10, 4]}
def write(path, tensors):
    header, data, off = {}, b"", 0
    for k, v in tensors.items():
        b = v.astype(np.float32).tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        data += b
    h = json.dumps(header).encode()
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
write(f"{out}/init.safetensors", {k: rng.standard_normal(s) * 0.1 for k, s in shapes.items()})
write(f"{out}/grads.safetensors", {f"{k}@{t}": rng.standard_normal(s) for t in range(1, 13) for k, s in shapes.items()})
PY
# the optimizers both binaries know (`opal list` prints "  family: names" lines, or one
# "optimizers: names" line before families)
list() { "$1" list | sed -n -e 's/^optimizers: //p' -e 's/^  [a-z_]*: //p' | tr ' ' '\n' | sort; }
names=$(comm -12 "$(list "$old" > "$dir/old.names"; echo "$dir/old.names")" "$(list "$new" > "$dir/new.names"; echo "$dir/new.names")")
same=0 differ=0
for o in $names; do
  "$old" replay "$o" --init "$dir/init.safetensors" --grads "$dir/grads.safetensors" --steps 12 --output "$dir/old.st" >/dev/null
  "$new" replay "$o" --init "$dir/init.safetensors" --grads "$dir/grads.safetensors" --steps 12 --output "$dir/new.st" >/dev/null
  if /usr/bin/python3 - "$dir/old.st" "$dir/new.st" <<'PY'
import json, struct, sys
def tensors(path):  # every tensor's bytes by name; the metadata (hyperparameter lists) may change
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
bad = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
if bad:
    print("  tensors that differ:", ", ".join(bad))
sys.exit(1 if bad else 0)
PY
  then same=$((same + 1)); else differ=$((differ + 1)); echo "differs: $o"; fi
done
echo "bit-identical: $same optimizers; different: $differ"
[ "$differ" -eq 0 ]
