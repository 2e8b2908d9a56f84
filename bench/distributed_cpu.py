"""Sharded optimizer steps on the CPU over torch.distributed (gloo, spawned processes): Opal's
AdamW with process_group= against torch.distributed.optim.ZeroRedundancyOptimizer wrapping
torch.optim.AdamW, on 1 and 2 ranks, in the same run. A benchmark, not a test.

Prints per world size: the median step time of each (after warm-up), the optimizer state each rank
holds, and the bytes each step moves (ZeRO: every parameter broadcast once, from its owner: both
share the updated parameters the same way; Opal buckets them into one flat buffer per owner and
dtype). Then parameters sharded by rows (shards=, FSDP's layout: each rank holds half the rows of
every matrix): AdamW moves nothing, Muon gathers each matrix's rows to its owner and scatters the
result (the bytes this rank sends and receives per step).

    PYTHONPATH=build/python OPAL_STDLIB=$PWD/stdlib python3 bench/distributed_cpu.py [--layers 4] [--width 512]
"""

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn


def model(layers, width):
    torch.manual_seed(0)
    blocks = []
    for _ in range(layers):  # a transformer block's matrices: qkv, out, mlp in and out
        blocks += [nn.Linear(width, 3 * width), nn.Linear(width, width), nn.Linear(width, 4 * width), nn.Linear(4 * width, width)]
    return nn.Sequential(nn.Embedding(8192, width), *blocks)


def worker(rank, world, path, args, out):
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    from opal.torch import Optimizer
    from torch.distributed.optim import ZeroRedundancyOptimizer
    results = {}
    for name in ("opal", "torch", "rows:adamw", "rows:muon"):
        m = model(args.layers, args.width)
        params = list(m.parameters())
        if name == "opal":
            opt = Optimizer(m, "adamw", process_group=dist.group.WORLD, lr=1e-4)
        elif name == "torch":
            opt = ZeroRedundancyOptimizer(params, optimizer_class=torch.optim.AdamW, lr=1e-4, weight_decay=0.01)
        else:  # this rank's rows of every parameter
            local, shards = [], {}
            for n, p in m.named_parameters():
                per = -(-p.shape[0] // world)
                row = min(p.shape[0], rank * per)
                local.append((n, p.detach()[row:row + per].clone().requires_grad_(True)))
                shards[n] = (list(p.shape), row)
            params = [p for _, p in local]
            opt = Optimizer(local, name[5:], process_group=dist.group.WORLD, shards=shards, roles={"0.weight": "embedding"}, lr=1e-4)
        g = torch.Generator().manual_seed(1)
        for p in params:
            p.grad = torch.randn(p.shape, generator=g) * 1e-3
        times = []
        for s in range(args.warmup + args.steps):
            dist.barrier()
            t0 = time.perf_counter()
            opt.step()
            dist.barrier()
            if s >= args.warmup:
                times.append(time.perf_counter() - t0)
        held = opt.optim.state if name == "torch" else opt.state  # (ZeroRedundancyOptimizer keeps its shard's in the wrapped optimizer)
        state = sum(t.numel() * t.element_size() for st in held.values() for t in st.values() if torch.is_tensor(t) and t.dim() > 0)
        steps = args.warmup + args.steps
        moved = opt._rows.moved / steps if name.startswith("rows") else sum(p.numel() * p.element_size() for p in params)
        results[name] = (statistics.median(times) * 1e3, state, moved)
    torch.save(results, os.path.join(out, f"{rank}.pt"))
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    n = sum(p.numel() for p in model(args.layers, args.width).parameters())
    print(f"AdamW over {n / 1e6:.1f}M parameters ({args.layers} blocks of width {args.width}), gloo on {os.cpu_count()} CPUs")
    print(f"{'ranks':>5} {'optimizer':<28} {'step ms':>9} {'state MB/rank':>14} {'moved MB/step':>14}")
    for world in (1, 2):
        # a core per rank's threads, as torchrun sets OMP_NUM_THREADS (Opal's kernels are OpenMP)
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // world))
        with tempfile.TemporaryDirectory() as d:
            mp.spawn(worker, args=(world, os.path.join(d, "rendezvous"), args, d), nprocs=world, join=True)
            ranks = [torch.load(os.path.join(d, f"{r}.pt")) for r in range(world)]
        for name, label in (("opal", "opal adamw, process_group"), ("torch", "ZeroRedundancyOptimizer"), ("rows:adamw", "opal adamw, shards (rows)"),
                            ("rows:muon", "opal muon, shards (rows)")):
            ms = max(r[name][0] for r in ranks)
            state = max(r[name][1] for r in ranks) / 1e6
            sent = max(r[name][2] for r in ranks) / 1e6 if world > 1 else 0.0
            print(f"{world:>5} {label:<28} {ms:>9.1f} {state:>14.1f} {sent:>14.1f}")


if __name__ == "__main__":
    main()
