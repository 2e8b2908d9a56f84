"""opal.torch.Optimizer(process_group=...): owner-compute sharding over torch.distributed (gloo,
spawned processes). 2 and 3 ranks give the parameters of 1 rank; each rank holds about 1/world
of the state; a consolidated checkpoint resumes on any world size; ranks built differently are
refused; reduce_grads averages per-rank gradients."""

import multiprocessing
import os
import tempfile
import unittest
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

import opal
from opal.torch import Optimizer

STEPS = 4

# ranks start from a server that has imported torch already: a fork of it, not a fresh
# interpreter importing torch again (about 2 s a rank on a CI machine)
multiprocessing.set_forkserver_preload(["torch", "torch.distributed"])


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 24), nn.Tanh(), nn.Linear(24, 16), nn.Tanh(), nn.Linear(16, 3))


def batch(rank=0, world=1):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(48, 12, generator=g), torch.randn(48, 3, generator=g)
    n = 48 // world
    return x[rank * n:(rank + 1) * n], y[rank * n:(rank + 1) * n]


# bf16 parameters, q8 state, stochastic rounding: what gloo cannot move as it is (it has no bf16)
BF16 = dict(state="q8(32)", rounding="stochastic", seed=3)


def train(opt, m, rank=0, world=1, steps=STEPS):
    x, y = batch(rank, world)
    x = x.to(next(m.parameters()).dtype)
    for _ in range(steps):
        opt.zero_grad()
        ((m(x).float() - y) ** 2).mean().backward()
        opt.step()
    return {n: p.detach().clone() for n, p in m.named_parameters()}


def nan_step(opt, m):
    """Two steps, then one whose gradient of the second layer's weight (owned by one rank of a
    group) holds a NaN: the parameters after it, the skipped steps and what it raised."""
    train(opt, m, steps=2)
    x, y = batch()
    opt.zero_grad()
    ((m(x) - y) ** 2).mean().backward()
    m[2].weight.grad[1, 2] = float("nan")
    try:
        opt.step()
        said = ""
    except opal.NonFiniteError as e:
        said = str(e)
    return {"params": {n: p.detach().clone() for n, p in m.named_parameters()}, "skipped": opt.skipped_steps, "said": said,
            "steps": opt._engines[0].step_count}


class DeviceLost:
    """An engine whose step fails as a lost device's would, after the step's checks."""

    def __init__(self, engine):
        self.engine = engine

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def step(self, *args):
        raise RuntimeError("CUDA error: device lost")


def worker(rank, world, path, spec, case, out):
    # (a bounded wait: a test that regresses into a hang fails instead)
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        m = model()
        if case == "mismatch":
            try:
                Optimizer(m, spec, process_group=dist.group.WORLD, lr=1e-2 if rank == 0 else 2e-2)
                result = "built"
            except ValueError as e:
                result = str(e)
        elif case.startswith("save:"):  # two steps, then the whole state to a file from rank 0
            opt = Optimizer(m, spec, process_group=dist.group.WORLD)
            train(opt, m, steps=2)
            try:
                opt.state_dict()
                result = "no error"
            except RuntimeError as e:
                result = str(e)
            opt.consolidate_state_dict(to=0)
            if rank == 0:
                torch.save({"model": m.state_dict(), "opt": opt.state_dict()}, case[5:])
        elif case.startswith("resume:"):  # from that file, two more steps
            ckpt = torch.load(case[7:])
            m.load_state_dict(ckpt["model"])
            opt = Optimizer(m, spec, process_group=dist.group.WORLD)
            opt.load_state_dict(ckpt["opt"])
            result = train(opt, m, steps=2)
        elif case.startswith("fsave:"):  # two steps, then each rank's own state to a checkpoint folder
            folder = case[6:]
            opt = Optimizer(m, spec, process_group=dist.group.WORLD)
            train(opt, m, steps=2)
            opt.save_checkpoint(folder)
            if rank == 0:
                torch.save(m.state_dict(), folder + ".model")
            result = sorted(os.listdir(folder))
        elif case.startswith("fresume:"):
            folder = case[8:]
            m.load_state_dict(torch.load(folder + ".model"))
            opt = Optimizer(m, spec, process_group=dist.group.WORLD)
            opt.load_checkpoint(folder)
            result = train(opt, m, steps=2)
        elif case.startswith("fdie:"):  # a good save, a step, then rank 1 dies before its part of the next save
            folder = case[5:]
            opt = Optimizer(m, spec, process_group=dist.group.WORLD)
            train(opt, m, steps=2)
            opt.save_checkpoint(folder)
            train(opt, m, steps=1)
            if rank == 1:
                os._exit(3)
            try:
                opt.save_checkpoint(folder)
                result = "saved"
            except Exception as e:
                result = f"{type(e).__name__}: {e}"
        elif case == "reshaped":  # every rank reshapes the same parameter: each must refuse, owner or not
            opt = Optimizer(m, spec, process_group=dist.group.WORLD)
            m[0].weight.data = torch.zeros(24, 6)
            m[0].weight.grad = torch.zeros(24, 6)
            try:
                opt.step()
                result = "stepped"
            except ValueError as e:
                result = str(e)
        elif case == "empty":  # a parameter with no elements: no rank owns or steps it, the others as without it
            m.register_parameter("adapter", nn.Parameter(torch.zeros(0, 5)))
            opt = Optimizer(m, spec, process_group=dist.group.WORLD)
            result = train(opt, m)
            opt.consolidate_state_dict(to=0)
            if rank == 0:
                result["state"] = sorted(opt.state_dict()["state"])
        elif case.startswith(("fail:", "refuse:")):  # rank 1's step fails (a lost device) or is refused under a policy; then a retry
            opt = Optimizer(m, spec, process_group=dist.group.WORLD, nonfinite=case.split(":")[1])
            train(opt, m, steps=2)
            before = {n: p.detach().clone() for n, p in m.named_parameters()}
            x, y = batch()
            opt.zero_grad()
            ((m(x) - y) ** 2).mean().backward()
            if rank == 1 and case.startswith("fail:"):
                opt._engines[0] = DeviceLost(opt._engines[0])
            lr = opt.param_groups[0]["lr"]
            if rank == 1 and case.startswith("refuse:"):  # refused in the step's checks, on this rank only
                opt.param_groups[0]["lr"] = float("nan")
            try:
                opt.step()
                said = ""
            except Exception as e:
                said = f"{type(e).__name__}: {e}\n" + "\n".join(getattr(e, "__notes__", []))
            unchanged = all(torch.equal(p.detach(), before[n]) for n, p in m.named_parameters())
            steps = opt._engines[0].step_count
            if rank == 1 and case.startswith("fail:"):
                opt._engines[0] = opt._engines[0].engine
            opt.param_groups[0]["lr"] = lr
            opt.step()  # the retry, on every rank
            result = {"said": said, "unchanged": unchanged, "steps": steps, "skipped": opt.skipped_steps,
                      "params": {n: p.detach().clone() for n, p in m.named_parameters()}}
        elif case.startswith("nan:"):  # a NaN in one rank's parameter under a policy
            result = nan_step(Optimizer(m, spec, process_group=dist.group.WORLD, nonfinite=case[4:]), m)
        elif case == "reduce":
            opt = Optimizer(m, spec, process_group=dist.group.WORLD, reduce_grads=True)
            result = train(opt, m, rank, world)
        elif case in ("bf16", "bf16-reduce"):
            m = m.to(torch.bfloat16)
            opt = Optimizer(m, spec, process_group=dist.group.WORLD, reduce_grads=case == "bf16-reduce", **BF16)
            result = train(opt, m, rank, world) if case == "bf16-reduce" else train(opt, m)
        else:
            opt = Optimizer(m, spec, process_group=dist.group.WORLD)
            params = train(opt, m)
            state = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values())
            result = {"params": params, "state_bytes": state, "owned": len(opt.state)}
        torch.save(result, os.path.join(out, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def dying(rank, path, out):
    """Rank 1 dies after construction; rank 0's next step must fail, not wait."""
    dist.init_process_group("gloo", init_method=f"file://{path}", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    m = model()
    opt = Optimizer(m, "adamw", process_group=dist.group.WORLD)
    if rank == 1:
        os._exit(3)
    try:
        train(opt, m, steps=1)
        said = "no error"
    except Exception as e:
        said = f"{type(e).__name__}: {e}"
    with open(out, "w") as f:
        f.write(said)


def run(world, spec, case="plain"):
    with tempfile.TemporaryDirectory() as d:
        mp.start_processes(worker, args=(world, os.path.join(d, "rendezvous"), spec, case, d), nprocs=world, join=True, start_method="forkserver")
        return [torch.load(os.path.join(d, f"{r}.pt")) for r in range(world)]


class Sharded(unittest.TestCase):
    def test_every_world_size_gives_the_one_process_result(self):
        for spec in ("adamw", "muon", "soap", "adafactor"):
            m = model()
            alone = Optimizer(m, spec)
            want = train(alone, m)
            total = sum(t.numel() * t.element_size() for s in alone.state.values() for t in s.values())
            for world in (2, 3):
                with self.subTest(spec=spec, world=world):
                    ranks = run(world, spec)
                    for r in ranks:
                        for n, p in want.items():
                            torch.testing.assert_close(r["params"][n], p, rtol=1e-6, atol=0)
                    self.assertEqual(sum(r["owned"] for r in ranks), len(want))  # every parameter has one owner
                    self.assertEqual(sum(r["state_bytes"] for r in ranks), total)
                    self.assertTrue(all(r["state_bytes"] < total for r in ranks))

    def test_a_parameter_with_no_elements_is_passed_over_on_every_rank(self):
        m = model()
        want = train(Optimizer(m, "muon"), m)
        ranks = run(2, "muon", "empty")
        for r in ranks:
            for n, p in want.items():
                torch.testing.assert_close(r[n], p, rtol=1e-6, atol=0)
            self.assertEqual(tuple(r["adapter"].shape), (0, 5))
        self.assertEqual(ranks[0]["state"], sorted(want))  # the consolidated state: every other parameter's, none for it

    def test_bf16_parameters_with_q8_state_step_as_in_one_process(self):
        # the stepped parameters travel as their bytes, 16-bit gradients are averaged in f32
        m = model().to(torch.bfloat16)
        want = train(Optimizer(m, "adamw", **BF16), m)
        for r in run(2, "adamw", "bf16"):
            for n, p in want.items():
                self.assertEqual(r[n].dtype, torch.bfloat16)
                self.assertTrue(torch.equal(r[n], p), n)
        ranks = run(2, "adamw", "bf16-reduce")  # each rank's half of the batch, averaged
        for n, p in want.items():
            self.assertTrue(torch.equal(ranks[0][n], ranks[1][n]), n)
            torch.testing.assert_close(ranks[0][n].float(), p.float(), rtol=0, atol=2e-2)

    def test_a_checkpoint_of_3_ranks_resumes_on_2_and_on_1(self):
        for spec in ("adamw", "soap"):
            m = model()
            want = train(Optimizer(m, spec), m)  # uninterrupted
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "ckpt.pt")
                for r in run(3, spec, "save:" + path):
                    self.assertIn("consolidate_state_dict", r)  # state_dict() before consolidating
                for world in (2, 1):
                    with self.subTest(spec=spec, world=world):
                        if world == 1:  # an unsharded optimizer takes it as it is
                            ckpt = torch.load(path)
                            m = model()
                            m.load_state_dict(ckpt["model"])
                            opt = Optimizer(m, spec)
                            opt.load_state_dict(ckpt["opt"])
                            got = [train(opt, m, steps=2)]
                        else:
                            got = run(world, spec, "resume:" + path)
                        for params in got:
                            for n, p in want.items():
                                torch.testing.assert_close(params[n], p, rtol=1e-6, atol=0)

    def test_a_rank_that_dies_ends_the_others_with_an_error(self):
        ctx = mp.get_context("forkserver")
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "survivor")
            ps = [ctx.Process(target=dying, args=(r, os.path.join(d, "rendezvous"), out)) for r in range(2)]
            for p in ps:
                p.start()
            for p in ps:
                p.join(120)
            self.assertEqual([p.exitcode for p in ps], [0, 3])  # the survivor returned, it did not hang
            with open(out) as f:
                said = f.read()
            self.assertIn("PeerError", said)
            # (the step's first collective: the ranks' agreement on whether one failed)
            self.assertIn("agreeing whether a rank met a NaN, an Inf or an error over the process group failed", said)

    def test_a_checkpoint_folder_of_3_ranks_resumes_on_2_and_on_1(self):
        m = model()
        want = train(Optimizer(m, "soap"), m)
        with tempfile.TemporaryDirectory() as d:
            folder = os.path.join(d, "ckpt")
            files = run(3, "soap", "fsave:" + folder)[0]
            self.assertEqual(files, ["index.json", "rank-0.pt", "rank-1.pt", "rank-2.pt"])
            for params in run(2, "soap", "fresume:" + folder):
                for n, p in want.items():
                    torch.testing.assert_close(params[n], p, rtol=1e-6, atol=0)
            m = model()
            m.load_state_dict(torch.load(folder + ".model"))
            opt = Optimizer(m, "soap")
            opt.load_checkpoint(folder)  # one process, no group
            params = train(opt, m, steps=2)
            for n, p in want.items():
                torch.testing.assert_close(params[n], p, rtol=1e-6, atol=0)

    def test_a_broken_checkpoint_folder_is_refused_and_changes_nothing(self):
        m = model()
        opt = Optimizer(m, "adamw")
        train(opt, m, steps=2)
        with tempfile.TemporaryDirectory() as d:
            folder = os.path.join(d, "ckpt")
            opt.save_checkpoint(folder)
            self.assertEqual(sorted(os.listdir(folder)), ["index.json", "rank-0.pt"])
            before = {n: {k: t.clone() for k, t in s.items()} for n, s in Optimizer(model(), "adamw").state_dict()["state"].items()}
            fresh = Optimizer(model(), "adamw")
            with open(os.path.join(folder, "rank-0.pt"), "r+b") as f:
                f.truncate(100)
            with self.assertRaises(opal.CheckpointError) as e:
                fresh.load_checkpoint(folder)
            self.assertIn("cannot load checkpoint folder", str(e.exception))
            with self.assertRaises(opal.CheckpointError):
                fresh.load_checkpoint(os.path.join(d, "nowhere"))
            self.assertEqual(fresh.step_count(), 0)
            for n, slots in fresh.state_dict()["state"].items():
                for k, t in slots.items():
                    self.assertTrue(torch.equal(t, before[n][k]))

    def test_a_save_a_rank_dies_in_leaves_the_previous_checkpoint(self):
        ctx = mp.get_context("forkserver")
        with tempfile.TemporaryDirectory() as d:
            folder, out = os.path.join(d, "ckpt"), os.path.join(d, "survivor")
            ps = [ctx.Process(target=worker, args=(r, 2, os.path.join(d, "rendezvous"), "adamw", "fdie:" + folder, d)) for r in range(2)]
            for p in ps:
                p.start()
            for p in ps:
                p.join(120)
            self.assertEqual([p.exitcode for p in ps], [0, 3])
            said = torch.load(os.path.join(d, "0.pt"))
            self.assertIn("PeerError", said)
            self.assertEqual(sorted(os.listdir(folder)), ["index.json", "rank-0.pt", "rank-1.pt"])
            m = model()
            opt = Optimizer(m, "adamw")
            opt.load_checkpoint(folder)
            self.assertEqual(opt.step_count(), 2)  # the save of step 2, whole

    def test_a_reshaped_parameter_is_refused_on_every_rank_owner_or_not(self):
        for r in run(3, "adamw", "reshaped"):
            self.assertIn("parameter `0.weight` has shape [24, 6] now", r)

    def test_ranks_built_differently_are_refused_naming_the_difference(self):
        for r in run(2, "adamw", "mismatch"):
            self.assertIn("its hyperparameter `lr` is 0.0", r)  # 0.02 on rank 1, 0.01 on rank 0: each names the other's
            self.assertIn("builds a different optimizer", r)

    def test_a_nan_on_one_rank_skips_or_raises_the_step_on_every_rank(self):
        # as in one process: skip leaves every parameter as it was on every rank (not only the
        # owner's), raise raises on every rank (no rank left waiting in the broadcast)
        for policy in ("skip", "raise"):
            m = model()
            want = nan_step(Optimizer(m, "adamw", nonfinite=policy), m)
            with self.subTest(policy=policy):
                ranks = run(2, "adamw", "nan:" + policy)
                for r in ranks:
                    for n, p in want["params"].items():
                        self.assertTrue(torch.equal(r["params"][n], p), n)
                    self.assertEqual(r["skipped"], want["skipped"])
                    self.assertEqual(r["steps"], 2)
                    self.assertEqual(bool(r["said"]), policy == "raise")
                if policy == "raise":  # the owner names the parameter, the other says where to look
                    self.assertEqual(sorted("`2.weight`" in r["said"] for r in ranks), [False, True])
                    self.assertTrue(any("another process of the group" in r["said"] for r in ranks))

    def test_an_error_on_one_rank_undoes_the_step_on_every_rank_and_a_retry_goes_on(self):
        # an error past the checks (a lost device) on rank 1: under the policies that agree on
        # every step, rank 1 raises it, rank 0 undoes its own step and raises PeerStepError (it
        # used to wait in the agreement until the group's timeout); the retry then steps every
        # rank as one process would
        m = model()
        want = Optimizer(m, "adamw")
        train(want, m, steps=3)
        # A step refused by its checks on rank 1 alone (its lr a NaN) likewise: rank 0 used
        # to wait until the group's timeout. Under zero too (it keeps copies), which did not agree.
        for case in ("fail:skip", "fail:raise", "fail:zero", "refuse:skip", "refuse:zero"):
            with self.subTest(case=case):
                ranks = run(2, "adamw", case)
                if case.startswith("fail:"):
                    self.assertIn("RuntimeError: CUDA error: device lost", ranks[1]["said"])
                    self.assertIn("the other processes of the group undid their steps too", ranks[1]["said"])
                else:
                    self.assertIn("`lr`", ranks[1]["said"])
                self.assertIn("PeerStepError: another process of the group failed in this step", ranks[0]["said"])
                for r in ranks:
                    self.assertTrue(r["unchanged"])
                    self.assertEqual(r["steps"], 2)
                    self.assertEqual(r["skipped"], 0)  # an error is not a skipped step
                    for n, p in m.named_parameters():
                        self.assertTrue(torch.equal(r["params"][n], p.detach()), n)

    def test_an_error_on_one_rank_under_off_ends_the_step_on_every_rank_which_keeps_it(self):
        # off keeps no copies: rank 0 keeps its step, and says the ranks now differ, instead of
        # waiting in the broadcast until the group's timeout (or, when rank 1 retried, taking the
        # retry's broadcast for this step's, silently one step apart)
        ranks = run(2, "adamw", "fail:off")
        self.assertIn("RuntimeError: CUDA error: device lost", ranks[1]["said"])
        self.assertIn("kept their steps", ranks[1]["said"])
        self.assertIn("PeerStepError: another process of the group failed in this step", ranks[0]["said"])
        self.assertIn("this process keeps its step", ranks[0]["said"])
        self.assertIn("resume every process from a checkpoint", ranks[0]["said"])
        self.assertEqual([r["steps"] for r in ranks], [3, 2])
        self.assertEqual([r["unchanged"] for r in ranks], [False, True])

    def test_reduce_grads_averages_each_rank_s_gradient(self):
        m = model()
        want = train(Optimizer(m, "adamw"), m)  # the whole batch on one process
        for r in run(2, "adamw", "reduce"):
            for n, p in want.items():
                torch.testing.assert_close(r[n], p, rtol=1e-5, atol=1e-6)

    def test_options_need_a_group(self):
        with self.assertRaises(ValueError):
            Optimizer(model(), "adamw", reduce_grads=True)
        with self.assertRaises(RuntimeError):  # torch.distributed not initialized here
            Optimizer(model(), "adamw", process_group=object())


if __name__ == "__main__":
    unittest.main()
