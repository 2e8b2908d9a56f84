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
