"""opal.torch.Optimizer follows torch.optim's conventions: `betas` and `weight_decay` in
param_groups (kept in sync with the spec's b1, b2, wd, so OneCycleLR's momentum cycling works),
maximize=True for any spec, foreach/fused accepted as hints, capturable/differentiable refused,
step hooks where torch has them, Schedule-Free's eval()/train() swap, and the ValueError torch.optim
raises for a learning rate, beta, eps or weight decay out of range (the spec's ranges).

Run: PYTHONPATH=build/python:tests/python python3 -m unittest tests/python/test_torch_conventions.py -v
"""
import unittest

import torch

import opal
from opal.torch import Optimizer
from test_torch import make_model, train_step, worst_rel


class Conventions(unittest.TestCase):
    def test_betas_and_weight_decay_are_shown_and_kept_in_sync(self):
        m = make_model()
        opt = Optimizer(m.named_parameters(), spec="adamw", lr=1e-3, betas=(0.8, 0.95), weight_decay=0.1)
        g = opt.param_groups[0]
        self.assertEqual((g["betas"], g["weight_decay"]), ((0.8, 0.95), 0.1))
        g["betas"] = (0.7, 0.9)  # written by a scheduler: the spec's b1, b2 follow at the next step
        train_step(m, opt, 1)
        self.assertEqual((g["b1"], g["b2"]), (0.7, 0.9))
        g["wd"] = 0.2  # written under the spec's name: the torch spelling follows
        train_step(m, opt, 2)
        self.assertEqual(g["weight_decay"], 0.2)
        g["betas"] = 0.5
        with self.assertRaisesRegex(TypeError, "not a pair"):
            opt.step()

    def test_one_cycle_lr_cycles_momentum_through_betas(self):
        m1, m2 = make_model(), make_model()
        o1 = torch.optim.AdamW(m1.parameters(), lr=1e-3, weight_decay=0.01)
        o2 = Optimizer(m2.named_parameters(), spec="adamw", lr=1e-3, weight_decay=0.01)
        s1 = torch.optim.lr_scheduler.OneCycleLR(o1, max_lr=1e-2, total_steps=40)
        s2 = torch.optim.lr_scheduler.OneCycleLR(o2, max_lr=1e-2, total_steps=40)  # cycle_momentum=True: writes betas
        b1s = set()
        for s in range(1, 41):
            train_step(m1, o1, s)
            train_step(m2, o2, s)
            b1s.add(o2.param_groups[0]["b1"])
            s1.step()
            s2.step()
            self.assertEqual(o1.param_groups[0]["betas"], o2.param_groups[0]["betas"])
        self.assertGreater(len(b1s), 10)  # the spec's b1 really moved
        self.assertLess(worst_rel(m2, m1), 1e-5)

    def test_maximize_ascends_for_any_spec(self):
        for spec, ref in (("adamw", lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.0, maximize=True)),
                          ("sgd", lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9, maximize=True))):
            m1, m2 = make_model(), make_model()
            o1 = ref(m1.parameters())
            o2 = Optimizer(m2.named_parameters(), spec=spec, lr=1e-2, maximize=True, **({"wd": 0.0} if spec == "adamw" else {"momentum": 0.9}))
            for s in range(1, 21):
                train_step(m1, o1, s)
                train_step(m2, o2, s)
            self.assertLess(worst_rel(m2, m1), 1e-5, spec)
        # p.grad is left as the model computed it
        w = torch.zeros(3, requires_grad=True)
        w.grad = torch.ones(3)
        Optimizer([("w", w)], spec="signum", lr=0.5, maximize=True).step()
        self.assertEqual(w.grad.tolist(), [1.0, 1.0, 1.0])
        self.assertEqual(w.detach().tolist(), [0.5, 0.5, 0.5])

    def test_foreach_and_fused_are_hints_capturable_is_refused(self):
        w = torch.zeros(3, requires_grad=True)
        opt = Optimizer([("w", w)], spec="adamw", foreach=True, fused=False, differentiable=False)
        self.assertTrue(opt.param_groups[0]["foreach"])
        for flag in ("capturable", "differentiable"):
            with self.assertRaisesRegex(ValueError, f"{flag}=True is not supported"):
                Optimizer([("w", w)], spec="adamw", **{flag: True})

    @unittest.skipUnless(hasattr(torch.optim.Optimizer, "register_step_pre_hook"), "torch < 2.0 has no step hooks")
    def test_step_hooks(self):
        w = torch.zeros(3, requires_grad=True)
        w.grad = torch.ones(3)
        opt = Optimizer([("w", w)], spec="sgd", lr=0.1)
        seen = []
        opt.register_step_pre_hook(lambda o, a, k: seen.append(("pre", w.detach()[0].item())))
        opt.register_step_post_hook(lambda o, a, k: seen.append(("post", w.detach()[0].item())))
        opt.step()
        self.assertEqual([k for k, _ in seen], ["pre", "post"])
        self.assertEqual(seen[0][1], 0.0)  # before the step
        self.assertAlmostEqual(seen[1][1], -0.1, places=6)  # after it

    def test_schedule_free_eval_and_train_swap_the_parameters(self):
        torch.manual_seed(0)
        w = torch.randn(4, 3, requires_grad=True)
        opt = Optimizer([("w", w)], spec="schedule_free_adamw", lr=0.05, b1=0.9)
        for s in range(5):
            w.grad = torch.sin(w.detach() + s)
            opt.step()
        y = w.detach().clone()
        z = opt.state[w]["schedule_free_adamw_core.z"].clone()
        opt.eval()
        torch.testing.assert_close(w.detach(), (y - 0.1 * z) / 0.9, rtol=1e-6, atol=1e-6)  # x
        opt.eval()  # already there: nothing changes
        torch.testing.assert_close(w.detach(), (y - 0.1 * z) / 0.9, rtol=1e-6, atol=1e-6)
        with self.assertRaisesRegex(RuntimeError, "eval mode"):
            opt.step()
        opt.train()
        torch.testing.assert_close(w.detach(), y, rtol=1e-6, atol=1e-6)
        opt.step()  # training goes on
        with self.assertRaisesRegex(TypeError, "no evaluation sequence"):
            Optimizer([("v", torch.zeros(2, requires_grad=True))], spec="adamw").eval()


class HyperparameterRanges(unittest.TestCase):
    """torch.optim.AdamW(lr=-1) raises ValueError; so does Opal, from the ranges its stdlib
    declares (`beta = 0.9 in [0, 1)`), wherever a value comes in, changing nothing."""

    def test_constructor_refuses_what_torch_refuses(self):
        for kwargs, names in [({"lr": -1e-3}, "`lr` = -0.001"), ({"betas": (1.0, 0.999)}, "`b1` = 1"), ({"betas": (0.9, -0.5)}, "`b2` = -0.5"),
                              ({"eps": -1e-8}, "`eps` = -1e-08"), ({"weight_decay": -0.1}, "`wd` = -0.1")]:
            with self.subTest(kwargs=kwargs):
                with self.assertRaises(ValueError):  # torch's own check agrees
                    torch.optim.AdamW(make_model().parameters(), **kwargs)
                with self.assertRaisesRegex(ValueError, f"{names} is out of range"):
                    Optimizer(make_model().named_parameters(), spec="adamw", **kwargs)

    def test_a_group_value_out_of_range_is_refused_at_step_changing_nothing(self):
        m = make_model()
        opt = Optimizer(m.named_parameters(), spec="adamw", lr=1e-2)
        train_step(m, opt, 1)
        before = [p.detach().clone() for p in m.parameters()]
        opt.param_groups[0]["betas"] = (0.9, 1.0)
        with self.assertRaisesRegex(ValueError, r"step \(parameter group 0\).*`b2` = 1 is out of range.*\[0, 1\)"):
            train_step(m, opt, 2)
        for b, p in zip(before, m.parameters()):
            self.assertTrue(torch.equal(b, p))
        self.assertEqual(opt.state_dict()["param_groups"][0]["b2"], 0.999)  # the engine kept its value
        opt.param_groups[0]["betas"] = (0.9, 0.99)
        train_step(m, opt, 3)  # and steps on once the value is back in range

    def test_ranges_are_shown_and_the_error_is_a_value_error(self):
        compiled = opal.Compiled("adamw")
        self.assertTrue(any("[0, 1)" in r and "`beta` of `momentum`" in r for r in compiled.ranges["b1"]))
        self.assertTrue(issubclass(opal.HyperparameterError, ValueError))
        self.assertTrue(issubclass(opal.HyperparameterError, opal.OpalError))
        with self.assertRaises(opal.HyperparameterError):
            compiled.check_hparam("b1", 1.0)
        with self.assertRaises(opal.NotFoundError):
            compiled.check_hparam("bb1", 0.5)
        # a spec's own range, with a cadence that must be whole
        spec = "optimizer o(lr = 0.1 in (0, 1], every = 2 in [1, inf) whole) { other: scale(lr / every) }"
        with self.assertRaisesRegex(ValueError, r"whole numbers in \[1, inf\)"):
            Optimizer(make_model().named_parameters(), spec=spec, every=2.5)
        with self.assertRaisesRegex(ValueError, r"\(0, 1\]"):
            Optimizer(make_model().named_parameters(), spec=spec, lr=0)


class Routing(unittest.TestCase):
    def test_routes_table_before_step_one(self):
        m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
        opt = Optimizer(m.named_parameters(), spec="muon")
        table = opt.routes()
        for name, p in m.named_parameters():
            self.assertIn(f"{name} [{', '.join(map(str, p.shape))}]", table)
        self.assertIn("view:", table)
        self.assertIn("bytes of optimizer state", table)

    def test_unnamed_parameters_and_name_routes_warn(self):
        m = torch.nn.Linear(4, 8)
        with self.assertWarnsRegex(UserWarning, "without names.*cannot match"):
            Optimizer(m.parameters(), spec="paper_adam")  # routes "*embed*", "*head*"... by name
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Optimizer(m.parameters(), spec="adamw")  # no name routes: nothing to say
            Optimizer(m.named_parameters(), spec="paper_adam")


if __name__ == "__main__":
    unittest.main()
