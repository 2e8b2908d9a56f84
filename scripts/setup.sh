#!/usr/bin/env bash
# Installs the Debian packages Opal builds with, when any is missing. Safe to run repeatedly.
set -euo pipefail
pkgs=(cmake g++ make libeigen3-dev libfmt-dev nlohmann-json3-dev doctest-dev libcli11-dev
      pybind11-dev python3-dev python3-torch)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
