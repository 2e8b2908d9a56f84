#!/usr/bin/env bash
# Killing `opal ablate` midway (kill -9) and starting it again gives the same final table as an
# uninterrupted run, without redoing the runs the journal holds. Usage: resume_test.sh OPAL_BINARY
set -euo pipefail
opal=$1
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
pid=
trap 'if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
grid=$here/../../examples/whitening.opal
args=(--workload linreg --steps 60 --eval-every 20 --seeds 2 -j 2 --no-progress)

"$opal" ablate "$grid" "${args[@]}" -o "$dir/whole" > "$dir/whole.md" 2> "$dir/whole.err"
total=$(wc -l < "$dir/whole/journal.jsonl")

"$opal" ablate "$grid" "${args[@]}" -o "$dir/killed" > /dev/null 2>&1 &
pid=$!
# kill it once a third of the runs are in the journal
for _ in $(seq 1 600); do
  # the journal does not exist until the first run ends (and cat failing must not end the script)
  n=0; [ -f "$dir/killed/journal.jsonl" ] && n=$(wc -l < "$dir/killed/journal.jsonl")
  [ "$n" -ge $((total / 3)) ] && break
  sleep 0.05
done
kill -9 $pid 2>/dev/null || { echo "the ablation finished before it could be killed"; exit 1; }
wait $pid 2>/dev/null || true
before=$(wc -l < "$dir/killed/journal.jsonl")
"$opal" ablate "$grid" "${args[@]}" -o "$dir/killed" > "$dir/resumed.md" 2> "$dir/resumed.err"
grep -q "taken from the journal" "$dir/resumed.err"
from=$(sed -n 's/.* \([0-9]*\) taken from the journal.*/\1/p' "$dir/resumed.err")
echo "uninterrupted: $total runs; killed after $before; the resumed run took $from from the journal"
[ "$from" -ge "$before" ] || { echo "FAIL: the resumed run redid journaled runs"; exit 1; }
# the same table, up to the wall-time column (measured, so it differs run to run)
python3 - "$dir/whole/report.json" "$dir/killed/report.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def strip(r):
    for c in r["cells"]:
        c.pop("wall_s", None); c.pop("wall_rel", None)
    return r
if strip(a) != strip(b):
    sys.exit("FAIL: the resumed report differs from the uninterrupted one")
print("same report")
PY
