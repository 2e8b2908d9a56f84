#!/usr/bin/env python3
"""A small character-level GPT trained on the Brown corpus, with any Opal spec as its optimizer.

    scripts/prepare_brown.sh                     # once: data/brown.txt
    PYTHONPATH=build/python python3 examples/torch/train_gpt.py --spec soap --lr 3e-3 --steps 300

Prints one JSON line per logged step, {"step":…,"loss":…,"time":…} (and "val_loss" every
--eval-every steps), so `opal ablate` can run it as an external workload. `--spec torch.adamw`
uses torch.optim.AdamW instead, for comparison. Hyperparameters of the spec are given as
--hp NAME=VALUE (repeatable); --lr is a shortcut for --hp lr=…. --save/--resume checkpoint the
model and the optimizer with torch.save.

Many processes (CPU, gloo), started by torchrun, or by hand with its environment variables:

    PYTHONPATH=build/python OMP_NUM_THREADS=1 python3 -m torch.distributed.run --standalone --nproc_per_node 2 \
        examples/torch/train_gpt.py --spec muon --lr 0.02 --steps 300
    for r in 0 1; do RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 OMP_NUM_THREADS=1 \
        PYTHONPATH=build/python python3 examples/torch/train_gpt.py --spec muon --lr 0.02 --steps 300 & done; wait

Each rank takes its share of every batch (--batch must divide by the number of ranks); the
optimizer averages the gradients over the ranks (reduce_grads), each rank steps the parameters it
owns and keeps only their state (process_group), and rank 0 logs and saves. The losses are those of
one process on the whole batch, to float rounding.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Block(nn.Module):
    def __init__(self, d, heads, ctx):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.up = nn.Linear(d, 4 * d, bias=False)
        self.down = nn.Linear(4 * d, d, bias=False)
        self.register_buffer("mask", torch.tril(torch.ones(ctx, ctx, dtype=torch.bool)))

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q, k, v = (t.view(B, T, self.heads, D // self.heads).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D // self.heads)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(B, T, D))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, d=64, layers=2, heads=4, ctx=64):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.zeros(ctx, d))
        self.blocks = nn.ModuleList(Block(d, heads, ctx) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, idx):
        x = self.embed(idx) + self.pos[: idx.shape[1]]
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x))


def load_text(path, limit):
    if not os.path.exists(path):
        sys.exit(f"train_gpt: no data at {path}; run scripts/prepare_brown.sh first")
    with open(path, encoding="utf-8") as f:
        text = f.read(limit) if limit else f.read()
    chars = sorted(set(text))
    table = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([table[c] for c in text], dtype=torch.long)
    split = int(len(ids) * 0.9)
    return ids[:split], ids[split:], len(chars)


def batches(data, ctx, batch, seed):
    """An endless, seeded sequence of random windows: the same data order for every optimizer."""
    g = torch.Generator().manual_seed(seed)
    while True:
        i = torch.randint(len(data) - ctx - 1, (batch,), generator=g)
        x = torch.stack([data[j : j + ctx] for j in i])
        y = torch.stack([data[j + 1 : j + ctx + 1] for j in i])
        yield x, y


@torch.no_grad()
def evaluate(model, data, ctx, batch, n=8):
    model.eval()
    losses = []
    for k, (x, y) in zip(range(n), batches(data, ctx, batch, seed=12345)):
        losses.append(F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item())
    model.train()
    return sum(losses) / len(losses)


def make_optimizer(model, spec, hparams, group=None):
    if spec == "torch.adamw":
        if group is not None:
            raise SystemExit("many processes run an Opal spec; torch.adamw is the one-process comparison")
        return torch.optim.AdamW(model.parameters(), **{({"wd": "weight_decay"}).get(k, k): v for k, v in hparams.items()})
    from opal.torch import Optimizer

    # roles come from the modules (embed: embedding, head: head, ln*: norm, biases); the learned
    # position table is a bare Parameter, so it is named as the embedding it is
    sharded = {} if group is None else {"process_group": group, "reduce_grads": True}
    return Optimizer(model, spec=spec, roles={"pos": "embedding"}, **sharded, **hparams)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default="adamw", help="an Opal spec (stdlib name, .opal path or text), or torch.adamw")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="a hyperparameter of the spec")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "brown.txt"))
    ap.add_argument("--data-limit", type=int, default=2_000_000, help="characters of the corpus to use (0: all)")
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--save", help="checkpoint file written at the end (torch.save)")
    ap.add_argument("--resume", help="checkpoint file to start from")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    hparams = {}
    for kv in args.hp:
        k, _, v = kv.partition("=")
        hparams[k] = float(v)
    if args.lr is not None:
        hparams["lr"] = args.lr

    # under torchrun (WORLD_SIZE > 1): one process group over every rank
    world, rank, group = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")), None
    if world > 1:
        import torch.distributed as dist

        if args.batch % world:
            raise SystemExit(f"--batch {args.batch} does not divide among {world} ranks")
        dist.init_process_group("gloo")
        group = dist.group.WORLD

    train, val, vocab = load_text(args.data, args.data_limit)
    torch.manual_seed(args.seed)  # the same initial weights for every optimizer (and every rank)
    model = GPT(vocab, d=args.d, layers=args.layers, ctx=args.ctx)
    opt = make_optimizer(model, args.spec, hparams, group)
    start_step = 0
    if args.resume:
        ck = torch.load(args.resume)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_step = ck["step"]
    data = batches(train, args.ctx, args.batch, seed=args.seed + 1)
    for _ in range(start_step):  # the same batches as an unbroken run
        next(data)

    t0 = time.perf_counter()
    for step in range(start_step + 1, args.steps + 1):
        x, y = next(data)
        if group is not None:  # this rank's share of the batch
            x, y = x.chunk(world)[rank], y.chunk(world)[rank]
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if group is not None:  # the whole batch's loss
            loss = loss.detach().clone()
            dist.all_reduce(loss, group=group)
            loss /= world
        if not math.isfinite(loss.item()):
            print(json.dumps({"step": step, "loss": loss.item(), "diverged": True}), flush=True)
            return 3
        if rank == 0 and (step % args.log_every == 0 or step == args.steps or step == start_step + 1):
            rec = {"step": step, "loss": round(loss.item(), 6), "time": round(time.perf_counter() - t0, 4)}
            if step % args.eval_every == 0 or step == args.steps:
                rec["val_loss"] = round(evaluate(model, val, args.ctx, args.batch), 6)
            print(json.dumps(rec), flush=True)
    if args.save:
        if group is not None:
            opt.consolidate_state_dict(to=0)  # every rank's state, gathered on rank 0
        if rank == 0:
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": args.steps}, args.save)
    if group is not None:
        # every rank done (rank 0's save included) before the group goes: a rank that tore its
        # gloo connections down while another still used them aborted it ("terminate called
        # without an active exception"), seen once under a loaded CI machine
        dist.barrier(group=group)
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
