#!/bin/sh
# The CPU kernels' C++ of every stdlib optimizer, in three variants (f32; 16-bit parameters with
# q8 state and the fused non-finite checks; bf16 state with stochastic rounding), compiles with
# clang as with the default host compiler (OPAL_CXX=clang++ is supported). Syntax and semantics
# only (-fsyntax-only): the suites run the kernels compiled by c++.
# Usage: clang_kernels.sh OPAL_BINARY CLANGXX
set -eu
opal=$1
cxx=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() {  # FILE: compiles as the runtime compiles kernels, less code generation
  "$cxx" -std=c++17 -fopenmp -fsyntax-only -w -x c++ "$1" > "$tmp/log" 2>&1
}
# the check itself refuses C++ that clang refuses
printf 'extern "C" void k(float* x) { x[0] = undeclared_name; }\n' > "$tmp/bad.cpp"
if check "$tmp/bad.cpp"; then echo "clang_kernels: a kernel with an error passed the check"; exit 1; fi
names=$("$opal" list | sed -n 's/^  [a-z]*: //p' | tr ' ' '\n' | grep . || true)
count=$(printf '%s\n' "$names" | wc -l)
[ "$count" -ge 50 ] || { echo "clang_kernels: only $count stdlib optimizers listed"; exit 1; }
failed=0
for n in $names; do
  for variant in plain q8 bf16sr; do
    case $variant in
      plain) "$opal" emit "$n" > "$tmp/k.cpp" ;;
      q8) "$opal" emit "$n" --mixed --state q8 --check-finite > "$tmp/k.cpp" ;;
      bf16sr) "$opal" emit "$n" --mixed --state "bf16, stochastic" > "$tmp/k.cpp" ;;
    esac
    if ! check "$tmp/k.cpp"; then
      echo "clang_kernels: $n ($variant) does not compile with $cxx:"; head -20 "$tmp/log"; failed=1
    fi
  done
done
[ "$failed" -eq 0 ] || exit 1
echo "clang_kernels: $count optimizers, 3 variants each, compile with $cxx"
