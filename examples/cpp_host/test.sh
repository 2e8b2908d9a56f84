#!/usr/bin/env bash
# The C++ host example trains (loss falls 10x), and stopping at step 100 and resuming from the
# checkpoint gives the same losses as an unbroken run, digit for digit.
set -euo pipefail
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
for spec in adamw muon; do
  "$bin" --spec $spec --steps 200 > "$dir/full.jsonl"
  "$bin" --spec $spec --steps 100 --checkpoint "$dir/ck.safetensors" --save-at 100 > "$dir/first.jsonl"
  "$bin" --spec $spec --steps 200 --checkpoint "$dir/ck.safetensors" --resume > "$dir/second.jsonl" 2> "$dir/report.txt"
  grep -q "restored" "$dir/report.txt" || { echo "$spec: no load report"; cat "$dir/report.txt"; exit 1; }
  sed 's/,"ms".*//' "$dir/full.jsonl" > "$dir/a"
  cat "$dir/first.jsonl" "$dir/second.jsonl" | sed 's/,"ms".*//' > "$dir/b"
  diff "$dir/a" "$dir/b" || { echo "$spec: the resumed run differs"; exit 1; }
  first=$(head -1 "$dir/a" | sed 's/.*"loss":\([^,}]*\).*/\1/')
  last=$(tail -1 "$dir/a" | sed 's/.*"loss":\([^,}]*\).*/\1/')
  awk -v f="$first" -v l="$last" -v s=$spec 'BEGIN { if (!(l < f / 10)) { print s ": loss " f " -> " l " did not fall 10x"; exit 1 } print s ": loss " f " -> " l }'
done

# Many processes (torchrun's variables), parameters sharded by rows: 2 and 3 ranks train as one
# process does: AdamW's losses to 1e-5 relative (the ranks' gradients are added up in another
# order than one process adds them), Muon's to 2% (Newton-Schulz magnifies those last bits) after
# it fell 10x.
many() {  # many WORLD SPEC STEPS OUT [env...]
  local world=$1 spec=$2 steps=$3 out=$4
  shift 4
  local pids=()
  for r in $(seq 0 $((world - 1))); do
    env "$@" WORLD_SIZE=$world RANK=$r MASTER_PORT=$$ "$bin" --spec $spec --steps $steps --timeout 10 > "$dir/rank$r.out" 2> "$dir/rank$r.err" &
    pids+=($!)
  done
  local rc=0
  for p in "${pids[@]}"; do wait $p || rc=$?; done
  cp "$dir/rank0.out" "$out"
  return $rc
}
for spec in adamw muon; do
  "$bin" --spec $spec --steps 200 | sed 's/,"ms".*//' > "$dir/one"
  for world in 2 3; do
    many $world $spec 200 "$dir/many" || { echo "$spec on $world ranks failed"; cat "$dir"/rank*.err; exit 1; }
    sed -i 's/,"ms".*//' "$dir/many"
    [ "$(wc -l < "$dir/many")" = "$(wc -l < "$dir/one")" ] || { echo "$spec on $world ranks: rank 0 printed another number of lines"; exit 1; }
    tol=1e-5
    [ $spec = muon ] && tol=0.02
    paste -d' ' "$dir/one" "$dir/many" | sed 's/{"step":[0-9]*,"loss":\([^ ]*\) {"step":[0-9]*,"loss":\(.*\)/\1 \2/' |
      awk -v t=$tol -v s=$spec -v w=$world '{ d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > t) { print s " on " w " ranks: loss " $2 " vs " $1 " in one process"; bad = 1 } }
        END { if (bad) exit 1; print s " on " w " ranks: the one-process losses to " t }'
  done
done
# a rank that dies makes the others end with an error within the timeout, not hang
start=$SECONDS
if many 2 adamw 50 "$dir/dead" OPAL_CPP_HOST_DIE_AT=5; then echo "a run whose rank 1 died succeeded"; exit 1; fi
grep -q "did not arrive at .* within 10 s: a rank died" "$dir/rank0.err" || { echo "rank 0 said:"; cat "$dir/rank0.err"; exit 1; }
[ $((SECONDS - start)) -lt 60 ] || { echo "rank 0 took $((SECONDS - start)) s to notice"; exit 1; }
echo "a dead rank: the other ended with an error in $((SECONDS - start)) s"
