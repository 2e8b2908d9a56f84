#!/usr/bin/env python3
"""A stand-in external trainer for the ablation tests: takes --spec, --seed and --hp NAME=VALUE
like examples/torch/train_gpt.py, and prints JSON lines whose loss is smallest at lr = 1e-2."""
import argparse, json, math, sys

ap = argparse.ArgumentParser()
ap.add_argument("--spec", required=True)
ap.add_argument("--seed", type=int, required=True)
ap.add_argument("--hp", action="append", default=[])
ap.add_argument("--steps", type=int, default=5)
a = ap.parse_args()
hp = dict(kv.split("=", 1) for kv in a.hp)
open(a.spec).read()  # the cell's spec must exist
lr = float(hp["lr"])
if lr > 50:
    print(json.dumps({"step": 1, "loss": None, "diverged": True}))
    sys.exit(0)
final = 1 + (math.log10(lr) + 2) ** 2 + 0.001 * a.seed
for s in range(1, a.steps + 1):
    print("a log line that is not JSON")
    print(json.dumps({"step": s, "loss": final + (a.steps - s), "val_loss": final + (a.steps - s) / 2}))
