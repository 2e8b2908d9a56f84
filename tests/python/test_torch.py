"""opal.torch.Optimizer against PyTorch's own optimizers, and its checkpoints.

Run: PYTHONPATH=build/python python3 -m unittest discover -s tests/python -v
"""
import copy
import math
import os
import tempfile
import unittest
import warnings

import torch

import opal
from opal.torch import Optimizer


def make_model(seed=0, bias=True):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(12, 24, bias=bias), torch.nn.Tanh(), torch.nn.Linear(24, 24, bias=bias), torch.nn.Tanh(),
                               torch.nn.Linear(24, 5, bias=bias))


def batch(step):
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(32, 12, generator=g)
    y = torch.randn(32, 5, generator=g)
    return x, y


def train_step(model, opt, step):
    x, y = batch(step)
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
    return loss.item()


def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def worst_rel(m1, m2):
    return max(rel(p1.detach(), p2.detach()) for p1, p2 in zip(m1.parameters(), m2.parameters()))


def muon_reference(params, lr, b1, wd, bf16):
    """Muon as algorithms.md gives it (Keller Jordan's code; torch.optim.Muon's formula):
    m <- lerp(m, g, 1 - b1); c = lerp(g, m, b1); five quintic Newton-Schulz steps on c / (|c| + 1e-7)
    with (3.4445, -4.7750, 2.0315), on the transpose when rows > cols; u scaled by
    sqrt(max(1, rows/cols)); W <- W(1 - lr wd) - lr u."""
    a, b, c = 3.4445, -4.7750, 2.0315
    bufs = [torch.zeros_like(p) for p in params]

    def ns(G):
        X = G.bfloat16() if bf16 else G.clone()
        if G.size(0) > G.size(1):
            X = X.T
        X = X / (X.norm() + 1e-7)
        for _ in range(5):
            A = X @ X.T
            B = b * A + c * A @ A
            X = a * X + B @ X
        if G.size(0) > G.size(1):
            X = X.T
        return X.float()

    def step():
        with torch.no_grad():
            for p, m in zip(params, bufs):
                m.lerp_(p.grad, 1 - b1)
                u = ns(p.grad.lerp(m, b1)) * math.sqrt(max(1.0, p.size(0) / p.size(1)))
                p.mul_(1 - lr * wd).add_(u, alpha=-lr)

    return step


class MatchesTorch(unittest.TestCase):
    def compare(self, torch_opt_fn, spec, steps=100, tol=1e-5, scheduler=None, **hp):
        m1, m2 = make_model(), make_model()
        o1 = torch_opt_fn(m1.parameters())
        o2 = Optimizer(m2.named_parameters(), spec=spec, **hp)
        s1 = scheduler(o1) if scheduler else None
        s2 = scheduler(o2) if scheduler else None
        worst = 0.0
        for s in range(1, steps + 1):
            l1 = train_step(m1, o1, s)
            l2 = train_step(m2, o2, s)
            if s1:
                s1.step()
                s2.step()
            w = worst_rel(m2, m1)
            worst = max(worst, w)
            self.assertLess(w, tol, f"step {s}: parameters differ by {w:.2e} relative")
            self.assertLess(abs(l1 - l2), 1e-4 * abs(l1) + 1e-7)
        return worst

    def test_adamw(self):
        w = self.compare(lambda p: torch.optim.AdamW(p, lr=3e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05), "adamw", lr=3e-3, betas=(0.9, 0.99),
                         eps=1e-8, weight_decay=0.05)
        print(f"\n  adamw vs torch.optim.AdamW, 100 steps: worst relative difference {w:.2e}")

    def test_adam(self):
        w = self.compare(lambda p: torch.optim.Adam(p, lr=2e-3, betas=(0.8, 0.95), eps=1e-7, weight_decay=0.01), "adam", lr=2e-3, b1=0.8, b2=0.95,
                         eps=1e-7, wd=0.01)
        print(f"\n  adam vs torch.optim.Adam, 100 steps: worst relative difference {w:.2e}")

    def test_lr_scheduler_drives_lr(self):
        sched = lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=10, gamma=0.5)
        self.compare(lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.0), "adamw", steps=40, scheduler=sched, lr=1e-2, wd=0.0)

    def test_param_groups_have_their_own_hyperparameters(self):
        m1, m2 = make_model(), make_model()
        g1 = [{"params": [p for n, p in m1.named_parameters() if n.endswith("weight")], "lr": 1e-2},
              {"params": [p for n, p in m1.named_parameters() if n.endswith("bias")], "lr": 1e-3, "weight_decay": 0.0}]
        named = list(m2.named_parameters())
        g2 = [{"params": [(n, p) for n, p in named if n.endswith("weight")], "lr": 1e-2},
              {"params": [(n, p) for n, p in named if n.endswith("bias")], "lr": 1e-3, "weight_decay": 0.0}]
        o1 = torch.optim.AdamW(g1, weight_decay=0.1)
        o2 = Optimizer(g2, spec="adamw", weight_decay=0.1)
        self.assertEqual(o2.param_groups[1]["wd"], 0.0)
        for s in range(1, 31):
            train_step(m1, o1, s)
            train_step(m2, o2, s)
        self.assertLess(worst_rel(m2, m1), 1e-5)

    def _muon_run(self, kind, steps=30):
        """W - W0 after `steps` steps of Muon on three shapes: kind is an Opal spec, or "ref32" /
        "ref16" for the formula in fp32 / in torch's bf16 arithmetic."""
        torch.manual_seed(3)
        shapes = [(24, 12), (12, 40), (32, 32)]
        ws = [torch.randn(*s) * 0.2 for s in shapes]
        ps = [w.clone().requires_grad_() for w in ws]
        if kind.startswith("ref"):
            step = muon_reference(ps, lr=0.02, b1=0.95, wd=0.01, bf16=kind == "ref16")
        else:
            step = Optimizer([(f"w{i}", p) for i, p in enumerate(ps)], spec=kind, lr=0.02, b1=0.95, wd=0.01).step
        for s in range(1, steps + 1):
            for p in ps:
                p.grad = torch.sin(p.detach() * 3 + s) + 0.1 * torch.cos(torch.arange(p.numel()).view_as(p) * 0.7 * s)
            step()
        return [p.detach() - w for p, w in zip(ps, ws)]

    def test_muon_fp32_matches_the_formula(self):
        spec = ("optimizer muon32(lr = 0.02, b1 = 0.95, wd = 0.0) {\n"
                "  matrix: momentum(b1, nesterov = true) -> ns(coeffs = keller, bf16 = false, eps = 1e-7) -> decay(wd) -> scale(lr)\n}\n")
        w = max(rel(a, b) for a, b in zip(self._muon_run(spec), self._muon_run("ref32")))
        print(f"\n  muon (fp32 Newton-Schulz) vs the formula, 30 steps: relative difference of W - W0 {w:.2e}")
        self.assertLess(w, 1e-4)

    def test_muon_bf16_is_as_close_to_the_formula_as_torch_bf16(self):
        # bf16 Newton-Schulz differs from exact arithmetic by bf16 rounding, whoever computes it:
        # Opal's muon (bf16) must be within 3e-2 of the fp32 formula, and no farther from it than
        # the same formula run in torch's own bf16 arithmetic.
        exact = self._muon_run("ref32")
        ours = max(rel(a, b) for a, b in zip(self._muon_run("muon"), exact))
        torchs = max(rel(a, b) for a, b in zip(self._muon_run("ref16"), exact))
        print(f"\n  muon (bf16) vs the fp32 formula, 30 steps: Opal {ours:.2e}, torch bf16 {torchs:.2e}")
        self.assertLess(ours, 3e-2)
        self.assertLessEqual(ours, torchs)


class InPlace(unittest.TestCase):
    def test_steps_in_place_without_copies_and_state_is_a_live_view(self):
        m = make_model()
        opt = Optimizer(m.named_parameters(), spec="adamw", lr=1e-2)
        ptrs = [p.data_ptr() for p in m.parameters()]
        before = [p.detach().clone() for p in m.parameters()]
        v = opt.state[m[0].weight]["adapt.v"]
        self.assertEqual(tuple(v.shape), (24, 12))
        self.assertEqual(float(v.abs().sum()), 0.0)
        train_step(m, opt, 1)
        self.assertEqual(ptrs, [p.data_ptr() for p in m.parameters()])
        self.assertTrue(all((p != b).any() for p, b in zip(m.parameters(), before)))
        self.assertGreater(float(v.abs().sum()), 0.0)  # the same tensor object sees the new state
        self.assertEqual(opt.step_count(), 1)

    def test_a_parameter_without_gradient_sits_out(self):
        m = make_model()
        opt = Optimizer(m.named_parameters(), spec="adamw", lr=1e-2)
        frozen = m[4].bias
        x, y = batch(1)
        ((m(x) - y) ** 2).mean().backward()
        frozen.grad = None
        w = frozen.detach().clone()
        opt.step()
        self.assertTrue(torch.equal(frozen.detach(), w))
        self.assertEqual(float(opt.state[frozen]["momentum.m"].abs().sum()), 0.0)
        self.assertFalse(torch.equal(m[0].bias.detach(), make_model()[0].bias.detach()))

    def test_routes_by_name_and_shape(self):
        torch.manual_seed(0)
        emb = torch.nn.Embedding(50, 8)
        lin = torch.nn.Linear(8, 8)
        params = [("embed.weight", emb.weight), ("h.0.weight", lin.weight), ("h.0.bias", lin.bias)]
        opt = Optimizer(params, spec="paper_muon")
        self.assertEqual(opt.route("h.0.weight"), "matrix")
        self.assertIn("embed", opt.route("embed.weight"))
        self.assertIn("bias", opt.route("h.0.bias"))
        with self.assertRaises(KeyError):
            opt.route("h.1.weight")


class UpdateStatistics(unittest.TestCase):
    def test_each_step_s_update_rms_and_singular_value_spread(self):
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
        opt = Optimizer(m, "adamw", lr=1e-2)
        x = torch.randn(16, 8)
        m(x).square().mean().backward()
        opt.step()
        self.assertFalse(opt.diagnostics)
        self.assertEqual(opt.update_stats, [])  # off: nothing recorded
        opt.diagnostics = True
        for step in (2, 3):
            opt.zero_grad()
            m(x).square().mean().backward()
            before = {n: p.detach().double().clone() for n, p in m.named_parameters()}
            opt.step()
            stats = {s["param"]: s for s in opt.update_stats}
            self.assertEqual(sorted(stats), sorted(before))
            for n, p in m.named_parameters():
                u = before[n] - p.detach().double()
                s = stats[n]
                self.assertEqual(s["step"], step)
                self.assertAlmostEqual(s["update_rms"], u.square().mean().sqrt().item(), delta=1e-6 * s["update_rms"])
                if p.dim() == 2:  # the seed paper's Figure 1 metric: largest singular value over their mean
                    sv = torch.linalg.svdvals(u)
                    self.assertAlmostEqual(s["sv_max"], sv.max().item(), delta=1e-5 * sv.max().item())
                    self.assertAlmostEqual(s["sv_ratio"], (sv.max() / sv.mean()).item(), delta=1e-4)
                else:
                    self.assertNotIn("sv_ratio", s)
        opt.diagnostics = False
        opt.step()
        self.assertEqual(opt.update_stats, [])


class Errors(unittest.TestCase):
    def test_bad_input_is_refused_clearly(self):
        m = make_model()
        with self.assertRaisesRegex(TypeError, "no hyperparameter `lrr`; did you mean `lr`"):
            Optimizer(m.named_parameters(), spec="adamw", lrr=1e-3)
        with self.assertRaisesRegex(TypeError, "torch.float64; Opal steps torch.float32, bfloat16 and float16"):
            Optimizer([("w", torch.zeros(3, 3, dtype=torch.float64, requires_grad=True))], spec="adamw")
        with self.assertRaisesRegex(ValueError, "not contiguous"):
            Optimizer([("w", torch.zeros(4, 3).t().requires_grad_())], spec="adamw")
        for betas in ((0.9,), (0.9, 0.99, 0.1), "0.9", None):  # (an IndexError, a silently dropped value, ...)
            with self.assertRaisesRegex(TypeError, r"`betas` is .*, not a pair \(b1, b2\)"):
                Optimizer(m.named_parameters(), spec="adamw", betas=betas)
        with self.assertRaisesRegex(TypeError, "spec must be a string"):
            Optimizer(m.named_parameters(), spec=None)
        # a group's tensor list changed behind the optimizer's back: refused, nothing stepped (an
        # appended tensor was left out silently)
        a, b = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(4))
        grown = Optimizer([("a", a)], spec="adamw")
        grown.param_groups[0]["params"].append(b)
        a.grad, b.grad = torch.ones(4), torch.ones(4)
        with self.assertRaisesRegex(ValueError, r"group 0 holds 2 tensors now, but the optimizer was built for 1 \(a\): add new "
                                    "parameters with add_param_group"):
            grown.step()
        self.assertTrue(torch.equal(a, torch.ones(4)))
        shrunk = Optimizer([("a", a), ("b", b)], spec="adamw")
        shrunk.param_groups[0]["params"].pop()
        with self.assertRaisesRegex(ValueError, "holds 1 tensors now, but the optimizer was built for 2"):
            shrunk.step()
        conv = torch.nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)
        with self.assertRaisesRegex(ValueError, "channels_last memory format: build the optimizer over model.to"):
            Optimizer(conv, spec="adamw")
        with self.assertRaisesRegex(opal.SpecError, r"(?s)unknown component `sclae`.*\^~~~~.*did you mean `scale`"):
            Optimizer(m.named_parameters(), spec="optimizer o(lr = 1) {\n  other: sclae(lr)\n}\n")
        with self.assertRaisesRegex(opal.OpalError, "MatrixOnly"):
            Optimizer([("b", torch.zeros(3, requires_grad=True))], spec="optimizer o(lr = 1) {\n  other: ns() -> scale(lr)\n}\n")
        p = torch.zeros(3, 3, requires_grad=True)
        with self.assertRaisesRegex(ValueError, "appears in two parameter groups"):
            Optimizer([{"params": [("w", p)]}, {"params": [("w", torch.zeros(2, requires_grad=True))]}], spec="adamw")

    def test_nonfinite_policies(self):
        def model_with_nan():
            m = make_model()
            x, y = batch(0)
            torch.nn.functional.mse_loss(m(x), y).backward()
            m[2].weight.grad[3, 4] = float("nan")
            return m
        with self.assertRaisesRegex(ValueError, "nonfinite must be off, raise, skip or zero"):
            Optimizer(make_model().named_parameters(), spec="adamw", nonfinite="maybe")
        m = model_with_nan()
        opt = Optimizer(m.named_parameters(), spec="adamw", nonfinite="raise")
        before = copy.deepcopy(m.state_dict())
        with self.assertRaisesRegex(opal.NonFiniteError, r"step 1: parameter `2.weight` \(route other\): the gradient holds NaN or Inf"):
            opt.step()
        for k, v in m.state_dict().items():
            self.assertTrue(torch.equal(v, before[k]), k)
        self.assertEqual(opt.step_count(), 0)
        m = model_with_nan()
        opt = Optimizer(m.named_parameters(), spec="adamw", nonfinite="skip")
        before = copy.deepcopy(m.state_dict())
        opt.step()
        self.assertEqual(opt.skipped_steps, 1)
        self.assertEqual([(e["param"], e["stage"], e["action"]) for e in opt.nonfinite_events], [("2.weight", "gradient", "step skipped")])
        for k, v in m.state_dict().items():
            self.assertTrue(torch.equal(v, before[k]), k)
        m = model_with_nan()
        opt = Optimizer(m.named_parameters(), spec="adamw", nonfinite="zero")
        before = copy.deepcopy(m.state_dict())
        opt.step()
        self.assertEqual(opt.nonfinite_events[0]["action"], "gradient zeroed")
        self.assertTrue(all(torch.isfinite(p).all() for p in m.parameters()))
        self.assertFalse(torch.equal(m[0].weight, before["0.weight"]))  # the others stepped
        self.assertTrue(torch.equal(m[2].weight.grad, torch.zeros_like(m[2].weight)))

    def test_check_and_compile(self):
        self.assertEqual(opal.check("adamw"), "")
        c = opal.compile("adamw")
        self.assertEqual(c.name, "adamw")
        self.assertEqual(c.hparams["lr"], 1e-3)
        self.assertIn("opal_r0_k0", c.source)
        with self.assertRaisesRegex(opal.SpecError, "adamww"):
            opal.compile("adamww")


class Checkpoints(unittest.TestCase):
    def test_round_trip_through_torch_save_continues_bit_for_bit(self):
        for spec in ("adamw", "paper_soap10", "muon"):
            with self.subTest(spec=spec):
                m = make_model(bias=spec != "muon")
                opt = Optimizer(m.named_parameters(), spec=spec, lr=1e-3)
                for s in range(1, 11):
                    train_step(m, opt, s)
                with tempfile.TemporaryDirectory() as d:
                    path = os.path.join(d, "ck.pt")
                    torch.save({"model": m.state_dict(), "opt": opt.state_dict()}, path)
                    ck = torch.load(path)
                m2 = make_model(seed=5, bias=spec != "muon")
                m2.load_state_dict(ck["model"])
                opt2 = Optimizer(m2.named_parameters(), spec=spec, lr=0.5)  # lr comes back from the checkpoint
                opt2.load_state_dict(ck["opt"])
                self.assertEqual(opt2.param_groups[0]["lr"], 1e-3)
                self.assertEqual(opt2.step_count(), 10)
                self.assertFalse(opt2.last_load_reports[0]["spec_changed"])
                for s in range(11, 21):
                    train_step(m, opt, s)
                    train_step(m2, opt2, s)
                for p1, p2 in zip(m.parameters(), m2.parameters()):
                    self.assertTrue(torch.equal(p1, p2))

    def test_bad_state_dicts_change_nothing(self):
        m = make_model()
        opt = Optimizer(m.named_parameters(), spec="adamw")
        for s in range(1, 4):
            train_step(m, opt, s)
        good = opt.state_dict()
        for s in range(4, 6):
            train_step(m, opt, s)
        snapshot = {k: v.clone() for k, v in opt.state[m[0].weight].items()}
        lr = opt.param_groups[0]["lr"]

        def unchanged():
            for k, v in opt.state[m[0].weight].items():
                self.assertTrue(torch.equal(v, snapshot[k]))
            self.assertEqual(opt.step_count(), 5)
            self.assertEqual(opt.param_groups[0]["lr"], lr)

        bad = copy.deepcopy(good)
        bad["state"]["0.weight"]["adapt.v"] = torch.zeros(12, 24)
        with self.assertRaisesRegex(opal.CheckpointError, r"state `0.weight/adapt.v` has shape \[12, 24\] in the checkpoint but \[24, 12\] here"):
            opt.load_state_dict(bad)
        unchanged()
        bad = copy.deepcopy(good)
        bad["state"]["2.bias"]["momentum.m"] = bad["state"]["2.bias"]["momentum.m"].float().numpy()  # not a tensor
        with self.assertRaises((TypeError, opal.CheckpointError)):
            opt.load_state_dict(bad)
        unchanged()
        bad = copy.deepcopy(good)
        del bad["state"]["4.bias"]
        with self.assertRaisesRegex(opal.CheckpointError, "state `4.bias/momentum.m` is missing"):
            opt.load_state_dict(bad)
        unchanged()
        with self.assertRaisesRegex(opal.CheckpointError, "parameter groups"):
            opt.load_state_dict({"state": {}, "param_groups": []})
        unchanged()
        other = Optimizer(make_model(bias=False).named_parameters(), spec="adamw")
        with self.assertRaisesRegex(opal.CheckpointError, "it has parameter `0.bias`, which this optimizer does not have"):
            other.load_state_dict(good)

    def test_a_changed_spec_keeps_what_fits_and_warns(self):
        m = make_model()
        opt = Optimizer(m.named_parameters(), spec="signum", lr=1e-3)
        for s in range(1, 4):
            train_step(m, opt, s)
        sd = opt.state_dict()
        opt2 = Optimizer(m.named_parameters(), spec="adamw")
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            opt2.load_state_dict(sd)
        self.assertTrue(any("initialized as the spec says" in str(x.message) for x in w))
        r = opt2.last_load_reports[0]
        self.assertTrue(r["spec_changed"])
        self.assertEqual(len(r["restored"]), 6)
        self.assertEqual(len(r["initialized"]), 6)
        self.assertTrue(torch.equal(opt2.state[m[0].weight]["momentum.m"], opt.state[m[0].weight]["momentum.m"]))


if __name__ == "__main__":
    unittest.main()
