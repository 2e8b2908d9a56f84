#!/usr/bin/env bash
# The main job: sets up and builds, checks the whole stdlib, then trains the built-in linear
# regression with AdamW, Lion, SOAP and Muon (eigenbasis and Newton-Schulz on the CPU) and
# prints the loss going down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
./build/opal check stdlib/*.opal stdlib/paper/*.opal
./build/opal run adamw --steps 200 --hparam lr=1e-2
./build/opal run lion --steps 200 --hparam lr=3e-3
./build/opal run soap --steps 200 --hparam lr=3e-2
./build/opal run muon --steps 200 --hparam lr=0.05
