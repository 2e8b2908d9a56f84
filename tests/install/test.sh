#!/usr/bin/env bash
# An installed Opal works like a library: `cmake --install` into a fresh prefix gives
# libopal.so with its SONAME, opal.h, the stdlib, the `opal` tool (finding the stdlib relative to
# itself), opalConfig.cmake (the C++ host example configures, builds and trains against it with
# find_package) and opal.pc (the same example built with pkg-config's flags).
# Usage: tests/install/test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
prefix=$dir/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
unset OPAL_STDLIB  # everything below must find the installed stdlib on its own
lib=$(dirname "$(find "$prefix" -name 'libopal.so' | head -1)")
[ -n "$lib" ] || { echo "no libopal.so installed"; exit 1; }
readelf -d "$lib/libopal.so" | grep -q 'SONAME.*libopal\.so\.0' || { echo "libopal.so has no SONAME libopal.so.0"; exit 1; }
[ -f "$prefix/include/opal/opal.h" ] || { echo "opal.h is not installed"; exit 1; }
[ -f "$prefix/share/opal/stdlib/adamw.opal" ] || { echo "the stdlib is not installed"; exit 1; }
"$prefix/bin/opal" list > "$dir/list.txt"
grep -q "^stdlib: $prefix/share/opal/stdlib$" "$dir/list.txt" || { echo "the installed opal does not read the installed stdlib:"; tail -1 "$dir/list.txt"; exit 1; }
grep -q ' adamw ' "$dir/list.txt" || { echo "the installed opal lists no adamw"; exit 1; }
# a project of its own, against the install (find_package)
cmake -S "$src/examples/cpp_host" -B "$dir/host" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$dir/host" >/dev/null
"$dir/host/opal_cpp_host" --spec adamw --steps 30 > "$dir/run.jsonl"
grep -q '"step":30' "$dir/run.jsonl" || { echo "the host built with find_package did not train"; cat "$dir/run.jsonl"; exit 1; }
# the same with pkg-config
flags=$(PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --cflags --libs opal)
g++ -std=c++17 -O1 "$src/examples/cpp_host/main.cpp" $flags -o "$dir/host_pc"
LD_LIBRARY_PATH="$lib" "$dir/host_pc" --spec sgd --steps 10 | grep -q '"step":10' || { echo "the host built with pkg-config did not run"; exit 1; }
echo "install: $prefix has libopal.so.0, opal.h, the stdlib and opal; find_package and pkg-config builds train"
