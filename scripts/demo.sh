#!/usr/bin/env bash
# The main job: sets up and builds, checks the whole stdlib, trains AdamW and Muon on the
# built-in linear regression, then runs the seed paper's Table 2 (basis x normalization,
# examples/whitening.opal) on the Fashion-MNIST MLP: a learning-rate sweep per cell, 2 seeds,
# and the table. Journal and reports (Markdown, CSV, JSON, SVG) go to ablations/whitening-mlp/;
# running it again resumes from the journal.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
./build/opal check stdlib/*.opal stdlib/*/*.opal
./build/opal run adamw --steps 200 --hparam lr=1e-2
./build/opal run muon --steps 200 --hparam lr=0.05
./build/opal grid examples/whitening.opal | tail -n 1
./build/opal ablate examples/whitening.opal --workload mlp
