#!/usr/bin/env bash
# Configures a build folder with Ninja: scripts/configure.sh DIR [CMAKE ARGS...]. Ninja starts a
# target's compiles before the libraries it links are built, where Make waits for each (CI time:
# 50 s less of the plain build, 40 s of the sanitizer build, on 2 cores). A folder configured
# before with another generator is configured afresh (its kernel cache and other files stay).
set -euo pipefail
dir=${1:?usage: scripts/configure.sh DIR [CMAKE ARGS...]}
shift
if [ -f "$dir/CMakeCache.txt" ] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "$dir/CMakeCache.txt"; then
  rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
fi
cmake -G Ninja -S . -B "$dir" "$@" >/dev/null
