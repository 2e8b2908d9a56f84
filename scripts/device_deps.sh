#!/usr/bin/env bash
# The header-only libraries Opal builds with (Eigen, fmt, nlohmann_json, CLI11, doctest), copied
# from this machine's Debian packages into build-device/deps with a small CMake package file
# each, for a GPU machine that has CUDA, cmake, a compiler, pybind11 and PyTorch but none of
# Debian's packages and no network: there, scripts/device_python.sh builds the Python module
# against them and runs opal.torch's CUDA tests. Carry build-device/deps (about 12 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=build-device/deps
rm -rf "$out"
mkdir -p "$out/include" "$out/cmake"
for d in eigen3 fmt nlohmann CLI doctest; do cp -r "/usr/include/$d" "$out/include/"; done
# One package file per library: an imported interface target over the copied headers (the
# names Opal's CMakeLists.txt links), found through CMAKE_PREFIX_PATH=<deps>/cmake.
package() {  # name, target, include dir (under include/), compile definitions
  mkdir -p "$out/cmake/$1"
  cat >"$out/cmake/$1/$1Config.cmake" <<EOF
# written by scripts/device_deps.sh: $2 over the headers copied beside it
if(NOT TARGET $2)
  add_library($2 INTERFACE IMPORTED)
  set_target_properties($2 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "\${CMAKE_CURRENT_LIST_DIR}/../../include$3"
                        INTERFACE_COMPILE_DEFINITIONS "$4")
endif()
set($1_FOUND TRUE)
EOF
}
package fmt fmt::fmt-header-only "" "FMT_HEADER_ONLY=1"
package nlohmann_json nlohmann_json::nlohmann_json "" ""
package Eigen3 Eigen3::Eigen "/eigen3" ""
package CLI11 CLI11::CLI11 "" ""
package doctest doctest::doctest "" ""
echo "device_deps.sh: $out is $(du -sm "$out" | cut -f1) MiB"
