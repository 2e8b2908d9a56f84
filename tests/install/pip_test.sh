#!/usr/bin/env bash
# `pip install .` puts the Python package into an environment: a venv with the system's site
# packages (for Debian's torch), built through CMake (reusing BUILD_DIR), and `import opal.torch`
# there steps a model with the stdlib found inside the installed package.
# Usage: tests/install/pip_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 -m venv --system-site-packages "$dir/venv"
OPAL_BUILD_DIR="$build" "$dir/venv/bin/pip" install --no-build-isolation --no-index -q "$src" 2>&1 | grep -v "^\s*$" | grep -iv "distutils\|warn(" || true
cd "$dir"
env -u OPAL_STDLIB -u PYTHONPATH "$dir/venv/bin/python" - "$dir/venv" <<'PY'
import sys
import torch
import opal
import opal.torch
venv = sys.argv[1]
assert opal.__file__.startswith(venv), f"opal was imported from {opal.__file__}, not the venv"
assert opal.stdlib_dir().startswith(venv), f"the stdlib is read from {opal.stdlib_dir()}, not the installed package"
model = torch.nn.Linear(4, 3)
opt = opal.torch.Optimizer(model.named_parameters(), spec="adamw", lr=1e-2)
before = model.weight.detach().clone()
model(torch.randn(8, 4)).pow(2).mean().backward()
opt.step()
assert not torch.equal(before, model.weight.detach()), "the step changed nothing"
print(f"pip: opal {opal.__version__} from {opal.__file__}: a step of adamw with the packaged stdlib")
PY
