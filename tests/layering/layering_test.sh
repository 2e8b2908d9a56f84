#!/bin/sh
# The include-layering check (cmake/check_layering.cmake) passes on the tree, and fails, naming
# the file and the include, on a tree where the runtime includes the AST or the IR.
set -eu
src=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake -DROOT="$src" -DSTAMP="$tmp/ok.stamp" -P "$src/cmake/check_layering.cmake"
[ -f "$tmp/ok.stamp" ] || { echo "the real tree did not pass"; exit 1; }
for bad in '#include "lang/ast.h"' '#include "compiler/ir/ir.h"' '#include "compiler/passes/dce.h"'; do
  rm -rf "$tmp/tree"
  mkdir -p "$tmp/tree/runtime"
  printf '// a runtime file that reaches into the compiler\n%s\n' "$bad" > "$tmp/tree/runtime/bad.cpp"
  if out=$(cmake -DROOT="$tmp/tree" -DSTAMP="$tmp/bad.stamp" -P "$src/cmake/check_layering.cmake" 2>&1); then
    echo "not refused: $bad"; exit 1
  fi
  echo "$out" | grep -q "runtime/bad.cpp includes" || { echo "the error does not name the file: $out"; exit 1; }
  [ ! -f "$tmp/bad.stamp" ] || { echo "a refused tree left its stamp"; exit 1; }
done
# the compiler may not include the runtime either
rm -rf "$tmp/tree"; mkdir -p "$tmp/tree/compiler/passes"
printf '#include "runtime/optimizer.h"\n' > "$tmp/tree/compiler/passes/bad.cpp"
if cmake -DROOT="$tmp/tree" -DSTAMP="$tmp/bad.stamp" -P "$src/cmake/check_layering.cmake" >/dev/null 2>&1; then echo "compiler -> runtime not refused"; exit 1; fi
echo "layering: enforced"
