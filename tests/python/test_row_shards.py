"""opal.torch.Optimizer(process_group=..., shards=...): parameters sharded by rows (FSDP-style
dim-0 shards, made by hand: Debian's torch 1.13 FSDP does not import under Python 3.11) over
gloo, spawned processes. Each rank holds torch.chunk's rows of every parameter and of its
gradient; elementwise stages step there, whole-matrix stages on the owner. 2 and 3 ranks give
the one-process parameters bit for bit; bad shards are refused on every rank."""

import multiprocessing
import os
import tempfile
import unittest
import warnings
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

import opal
from opal.torch import Optimizer

STEPS = 3
SPECS = ("adamw", "muon", "soap", "adafactor")

# ranks start from a server that has imported torch already (test_distributed.py)
multiprocessing.set_forkserver_preload(["torch", "torch.distributed"])


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 24), nn.Tanh(), nn.Linear(24, 16), nn.Tanh(), nn.Linear(16, 3))


def loss(m):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(48, 12, generator=g), torch.randn(48, 3, generator=g)
    return ((m(x) - y) ** 2).mean()


def alone(spec, steps=STEPS):
    m = model()
    opt = Optimizer(m, spec)
    for _ in range(steps):
        opt.zero_grad()
        loss(m).backward()
        opt.step()
    state_bytes = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values())
    return {n: p.detach().clone() for n, p in m.named_parameters()}, state_bytes


def chunk(n, world, rank):
    per = -(-n // world)
    begin = min(n, per * rank)
    return begin, min(n, begin + per) - begin


def sharded(spec, rank, world, tamper=False, steps=STEPS, start=None, save=None, nonfinite="off"):
    """Each rank's rows of every parameter; every step the whole model is put together (as FSDP
    all-gathers it), its gradient computed on the whole batch and each rank keeps its rows.
    start: a checkpoint folder to resume from (the model's parameters beside it); save: one to
    write at the end (and the consolidated state_dict). nonfinite other than off: the last
    step's gradient holds a NaN in rank 0's rows of one parameter (what that step raised is in
    opt.said)."""
    m = model()
    if start:
        m.load_state_dict(torch.load(start + ".model"))
    whole = dict(m.named_parameters())
    local, shards = {}, {}
    for n, p in whole.items():
        row, rows = chunk(p.shape[0], world, rank)
        if tamper and rank == 1 and n == "0.weight":
            row += 1  # rows that do not tile the parameter
        local[n] = p.detach()[row:row + rows].clone().requires_grad_(True)
        shards[n] = (list(p.shape), row)
    with warnings.catch_warnings():  # (no model: no roles, as intended)
        warnings.simplefilter("ignore")
        opt = Optimizer(list(local.items()), spec, process_group=dist.group.WORLD, shards=shards, nonfinite=nonfinite)
    opt.said = ""
    if start:
        opt.load_checkpoint(start)

    def assemble():
        with torch.no_grad():
            for n, p in whole.items():
                parts = [None] * world
                dist.all_gather_object(parts, local[n].detach())
                p.copy_(torch.cat(parts))

    for _ in range(steps):  # (the count is read below)
        assemble()
        m.zero_grad()
        loss(m).backward()
        for n, p in whole.items():
            row, rows = shards[n][1], local[n].shape[0]
            local[n].grad = p.grad[row:row + rows].clone()
        if nonfinite != "off" and _ == steps - 1 and rank == 0:
            local["2.weight"].grad[0, 1] = float("nan")
        try:
            opt.step()
        except opal.NonFiniteError as e:
            opt.said = str(e)
    state_bytes = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values())
    if save:
        opt.save_checkpoint(save)
        opt.consolidate_state_dict(to=0)
        assemble()
        if rank == 0:
            torch.save(m.state_dict(), save + ".model")
            torch.save(opt.state_dict(), save + ".consolidated")
    return {n: t.detach().clone() for n, t in local.items()}, state_bytes, opt


def worker(rank, world, path, case, out):
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        if case == "dies":  # rank 1 dies after construction: rank 0's step must fail, not wait
            m = model()
            local, shards = [], {}
            for n, p in m.named_parameters():
                row, rows = chunk(p.shape[0], 2, rank)
                local.append((n, p.detach()[row:row + rows].clone()))
                shards[n] = (list(p.shape), row)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt = Optimizer(local, "muon", process_group=dist.group.WORLD, shards=shards)
            if rank == 1:
                os._exit(3)
            for _, t in local:
                t.grad = torch.ones_like(t)
            try:
                opt.step()
                result = "stepped"
            except Exception as e:
                result = f"{type(e).__name__}: {e}"
        elif case == "malformed":
            try:
                Optimizer(model(), "adamw", process_group=dist.group.WORLD, shards={"0.weight": "rows 0 to 12"})
                result = "built"
            except TypeError as e:
                result = str(e)
        elif case == "zero":
            m = model()
            try:
                Optimizer(m, "adamw", process_group=dist.group.WORLD, shards={m[0].weight: ([24, 12], 12 * rank)}, nonfinite="zero")
                result = "built"
            except ValueError as e:
                result = str(e)
        elif case == "tamper":
            try:
                sharded("muon", rank, world, tamper=True)
                result = "built"
            except ValueError as e:
                result = str(e)
        elif case.startswith("nan:"):  # a NaN in rank 0's rows under a policy: the whole step goes, on every rank
            result = {}
            for spec in ("adamw", "muon"):
                params, _bytes, opt = sharded(spec, rank, world, nonfinite=case[4:])
                result[spec] = (params, opt.skipped_steps, opt.said)
        elif case.startswith("save:"):  # 2 steps, then a checkpoint folder and a consolidated state_dict
            result = {spec: sharded(spec, rank, world, steps=2, save=f"{case[5:]}-{spec}")[0] for spec in SPECS}
        elif case.startswith("resume:"):  # from that folder, one more step
            result = {spec: sharded(spec, rank, world, steps=1, start=f"{case[7:]}-{spec}")[0] for spec in SPECS}
        else:
            result = {}
            for spec in SPECS:
                params, state_bytes, opt = sharded(spec, rank, world)
                try:
                    opt.state_dict()
                    said = "no error"
                except RuntimeError as e:
                    said = str(e)
                result[spec] = (params, state_bytes, said)
        torch.save(result, os.path.join(out, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run(world, case="plain"):
    with tempfile.TemporaryDirectory() as d:
        mp.start_processes(worker, args=(world, os.path.join(d, "rendezvous"), case, d), nprocs=world, join=True, start_method="forkserver")
        return [torch.load(os.path.join(d, f"{r}.pt")) for r in range(world)]


class RowShards(unittest.TestCase):
    def test_2_and_3_ranks_holding_rows_give_the_one_process_parameters(self):
        want = {spec: alone(spec) for spec in SPECS}
        for world in (2, 3):
            ranks = run(world)
            for spec in SPECS:
                with self.subTest(spec=spec, world=world):
                    # each slot is held once: split by rows, or whole by the parameter's owner
                    self.assertEqual(sum(got[spec][1] for got in ranks), want[spec][1])
                    for rank, got in enumerate(ranks):
                        params, state_bytes, said = got[spec]
                        self.assertGreater(state_bytes, 0)
                        self.assertIn("consolidate_state_dict", said)  # (under a process group: consolidate first)
                        for n, p in want[spec][0].items():
                            row, rows = chunk(p.shape[0], world, rank)
                            torch.testing.assert_close(params[n], p[row:row + rows], rtol=0, atol=0)
                            self.assertFalse(torch.equal(params[n], model().state_dict()[n][row:row + rows]))  # it moved

    def test_a_nan_in_one_rank_s_rows_skips_or_raises_the_whole_step_on_every_rank(self):
        # the checked kernels run in every phase; the flags are read after the finish phase, and
        # the ranks agree (one all-reduce) before any keeps its step: as one process skipping it
        for policy in ("skip", "raise"):
            want = {spec: alone(spec, steps=STEPS - 1)[0] for spec in ("adamw", "muon")}
            ranks = run(2, "nan:" + policy)
            for spec in ("adamw", "muon"):
                with self.subTest(policy=policy, spec=spec):
                    for rank, got in enumerate(ranks):
                        params, skipped, said = got[spec]
                        for n, p in want[spec].items():
                            row, rows = chunk(p.shape[0], 2, rank)
                            torch.testing.assert_close(params[n], p[row:row + rows], rtol=0, atol=0)
                        self.assertEqual(skipped, 1 if policy == "skip" else 0)
                        self.assertEqual(bool(said), policy == "raise")
                        if policy == "raise" and rank == 0:  # (muon's owner may meet it too, in its whole phase)
                            self.assertIn("`2.weight`", said)
                if policy == "raise" and spec == "adamw":  # rows only: the other rank saw nothing
                    self.assertIn("another process of the group", ranks[1][spec][2])

    def test_a_checkpoint_of_3_ranks_resumes_on_2_and_in_one_process(self):
        want = {spec: alone(spec)[0] for spec in SPECS}  # 3 steps, uninterrupted
        with tempfile.TemporaryDirectory() as d:
            folder = os.path.join(d, "ckpt")
            run(3, "save:" + folder)
            self.assertEqual(sorted(os.listdir(os.path.join(d, "ckpt-muon"))), ["index.json", "rank-0.pt", "rank-1.pt", "rank-2.pt"])
            ranks = run(2, "resume:" + folder)
            for spec in SPECS:
                for rank, got in enumerate(ranks):
                    with self.subTest(spec=spec, rank=rank):
                        for n, p in want[spec].items():
                            row, rows = chunk(p.shape[0], 2, rank)
                            torch.testing.assert_close(got[spec][n], p[row:row + rows], rtol=0, atol=0)
                # one process, no group: the folder, and the consolidated state_dict, load as they are
                for how in ("folder", "consolidated"):
                    with self.subTest(spec=spec, how=how):
                        m = model()
                        m.load_state_dict(torch.load(f"{folder}-{spec}.model"))
                        opt = Optimizer(m, spec)
                        if how == "folder":
                            opt.load_checkpoint(f"{folder}-{spec}")
                        else:
                            opt.load_state_dict(torch.load(f"{folder}-{spec}.consolidated"))
                        self.assertEqual(opt.step_count(), 2)
                        opt.zero_grad()
                        loss(m).backward()
                        opt.step()
                        for n, p in m.named_parameters():
                            torch.testing.assert_close(p.detach(), want[spec][n], rtol=0, atol=0)

    def test_a_rank_that_dies_ends_the_other_s_step_with_an_error(self):
        ctx = mp.get_context("forkserver")
        with tempfile.TemporaryDirectory() as d:
            ps = [ctx.Process(target=worker, args=(r, 2, os.path.join(d, "rendezvous"), "dies", d)) for r in range(2)]
            for p in ps:
                p.start()
            for p in ps:
                p.join(120)
            self.assertEqual([p.exitcode for p in ps], [0, 3])  # the survivor returned, it did not hang
            said = torch.load(os.path.join(d, "0.pt"))
            self.assertIn("PeerError", said)
            self.assertIn("over the process group failed", said)

    def test_a_malformed_shard_is_refused(self):
        for r in run(2, "malformed"):
            self.assertIn("must be (whole shape, first row)", r)

    def test_rows_that_do_not_tile_a_parameter_are_refused_on_every_rank(self):
        for r in run(2, "tamper"):
            self.assertIn("the ranks' rows of `0.weight` do not tile its 24 rows", r)

    def test_the_zero_policy_is_refused_with_shards_on_every_rank(self):
        for said in run(2, "zero"):
            self.assertIn('nonfinite="zero" redoes one parameter\'s step', said)

    def test_shards_need_a_process_group(self):
        m = model()
        with self.assertRaises(ValueError) as e:
            Optimizer(m, "adamw", shards={m[0].weight: ([24, 12], 0)})
        self.assertIn("give process_group= too", str(e.exception))


if __name__ == "__main__":
    unittest.main()
