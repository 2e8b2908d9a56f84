"""opal.torch.Optimizer under hostile use (issue 14): every case here once crashed, hung, or
stepped silently wrong. Each asserts a clear error and that nothing changed, or the right result.

Run: PYTHONPATH=build/python python3 -m unittest tests/python/test_hardening.py -v
"""
import copy
import math
import pickle
import threading
import unittest

import torch

import opal
from opal.torch import Optimizer


def snapshot(model, opt):
    params = [p.detach().clone() for p in model.parameters()]
    state = {n: {k: v.clone() for k, v in s.items()} for n, s in opt.state_dict()["state"].items()}
    return params, state


def same(a, b):
    (pa, sa), (pb, sb) = a, b
    return all(torch.equal(x, y) for x, y in zip(pa, pb)) and sa.keys() == sb.keys() and all(
        torch.equal(sa[n][k], sb[n][k]) for n in sa for k in sa[n])


def model_and_opt(spec="adamw", **hp):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    opt = Optimizer(model.named_parameters(), spec=spec, **hp)
    return model, opt


def backward(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(5, 8, generator=g), torch.randn(5, 4, generator=g)
    model.zero_grad()
    ((model(x) - y) ** 2).mean().backward()


class ChangedParameters(unittest.TestCase):
    """Item 1: a parameter whose shape, dtype, device or layout changed after construction."""

    def setUp(self):
        self.model, self.opt = model_and_opt()
        backward(self.model)
        self.opt.step()
        backward(self.model, 1)
        self.w = self.model[0].weight  # [16, 8]

    def assert_refused(self, exc, words):
        before = snapshot(self.model, self.opt)
        with self.assertRaises(exc) as cm:
            self.opt.step()
        for w in words:
            self.assertIn(w, str(cm.exception))
        self.assertTrue(same(before, snapshot(self.model, self.opt)), "a refused step changed something")

    def test_smaller_tensor(self):
        with torch.no_grad():
            self.w.data = torch.randn(2, 2)
        self.w.grad = torch.randn(2, 2)
        self.assert_refused(ValueError, ["`0.weight`", "[2, 2]", "[16, 8]"])

    def test_larger_tensor(self):
        self.w.data = torch.randn(64, 64)
        self.w.grad = torch.randn(64, 64)
        self.assert_refused(ValueError, ["`0.weight`", "[64, 64]"])

    def test_same_numel_reshape(self):
        self.w.data = self.w.data.reshape(8, 16).clone()
        self.w.grad = torch.randn(8, 16)
        self.assert_refused(ValueError, ["`0.weight`", "[8, 16]", "[16, 8]"])

    def test_dtype(self):
        self.w.data = self.w.data.double()
        self.w.grad = self.w.grad.double()
        self.assert_refused(TypeError, ["`0.weight`", "float64"])

    def test_non_contiguous(self):
        self.w.data = torch.randn(8, 16).t()
        self.w.grad = torch.randn(16, 8)
        self.assert_refused(ValueError, ["`0.weight`", "contiguous"])

    def test_new_memory_of_the_same_shape_is_stepped(self):
        # a legitimate rebinding (w.data = a new tensor of the same shape) steps the new memory
        self.w.data = torch.zeros(16, 8)
        self.w.grad = torch.ones(16, 8)
        self.opt.step()
        self.assertTrue(bool((self.w.detach() < 0).all()))


class ConcurrentSteps(unittest.TestCase):
    """Item 7: steps of one optimizer from several threads run one at a time."""

    def test_threads_serialize(self):
        torch.manual_seed(0)
        ws = [torch.randn(64, 64, requires_grad=True) for _ in range(4)]
        ref = [w.detach().clone().requires_grad_() for w in ws]
        opt = Optimizer([(f"w{i}", w) for i, w in enumerate(ws)], spec="adamw", nonfinite="raise", lr=1e-3)
        ref_opt = Optimizer([(f"w{i}", w) for i, w in enumerate(ref)], spec="adamw", lr=1e-3)
        for w, r in zip(ws, ref):
            w.grad = torch.full_like(w, 0.5)
            r.grad = torch.full_like(r, 0.5)
        errors = []

        def worker():
            try:
                for _ in range(25):
                    opt.step()
            except Exception as e:  # pragma: no cover - would fail the test below
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for _ in range(100):
            ref_opt.step()
        self.assertEqual(errors, [])
        self.assertEqual(opt.step_count(), 100)
        for w, r in zip(ws, ref):
            self.assertTrue(bool(torch.isfinite(w).all()))
            self.assertTrue(torch.equal(w, r), "100 serialized steps differ from 100 sequential ones")


class AliasedParameters(unittest.TestCase):
    """Item 9: one tensor under two names, or twice in one list."""

    def test_twice_in_one_list(self):
        w = torch.randn(4, 4, requires_grad=True)
        with self.assertRaises(ValueError) as cm:
            Optimizer([("a", w), ("b", w)], spec="adamw")
        self.assertIn("`a` and `b`", str(cm.exception))

    def test_in_two_groups(self):
        w = torch.randn(4, 4, requires_grad=True)
        with self.assertRaises(ValueError) as cm:
            Optimizer([{"params": [("a", w)]}, {"params": [("b", w)]}], spec="adamw")
        self.assertIn("`a` and `b`", str(cm.exception))

    def test_view_of_another_parameter(self):
        w = torch.randn(4, 4, requires_grad=True)
        v = w.detach()[1:]  # overlaps w's memory
        with self.assertRaises(opal.OpalError) as cm:
            opt = Optimizer([("a", w), ("b", v)], spec="adamw")
            w.grad = torch.ones(4, 4)
            v.grad = torch.ones(3, 4)
            opt.step()
        self.assertIn("`a` and `b`", str(cm.exception))

    def test_aliased_after_construction(self):
        a = torch.randn(4, 4, requires_grad=True)
        b = torch.randn(4, 4, requires_grad=True)
        opt = Optimizer([{"params": [("a", a)]}, {"params": [("b", b)], "lr": 1e-2}], spec="adamw")
        b.data = a.data
        a.grad, b.grad = torch.ones(4, 4), torch.ones(4, 4)
        before = a.detach().clone()
        with self.assertRaises(ValueError) as cm:
            opt.step()
        self.assertIn("`a` and `b`", str(cm.exception))
        self.assertTrue(torch.equal(a.detach(), before))


class PerParameterSteps(unittest.TestCase):
    """Item 10: steps count per parameter, as torch does."""

    def test_step_without_gradients_counts_nothing(self):
        model, opt = model_and_opt()
        opt.step()
        self.assertEqual(opt.step_count(), 0)
        backward(model)
        opt.step()
        self.assertEqual(opt.step_count(), 1)

    def test_late_joiner_matches_torch(self):
        # progressive unfreezing: the second layer gets gradients from step 6 on
        torch.manual_seed(1)
        m1 = torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
        m2 = copy.deepcopy(m1)
        o1 = torch.optim.AdamW(m1.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01)
        o2 = Optimizer(m2.named_parameters(), spec="adamw", lr=1e-2, betas=(0.9, 0.99), weight_decay=0.01)
        for step in range(1, 16):
            for m in (m1, m2):
                m.zero_grad(set_to_none=True)
                g = torch.Generator().manual_seed(step)
                x, y = torch.randn(4, 6, generator=g), torch.randn(4, 3, generator=g)
                loss = ((m(x) - y) ** 2).mean()
                loss.backward()
                if step <= 5:
                    for p in m[2].parameters():
                        p.grad = None
            o1.step()
            o2.step()
        for p1, p2 in zip(m1.parameters(), m2.parameters()):
            self.assertLess(((p1 - p2).norm() / p1.norm()).item(), 1e-5)
        self.assertEqual(o2.step_count("0.weight"), 15)
        self.assertEqual(o2.step_count("2.weight"), 10)
        self.assertEqual(o1.state[m1[2].weight]["step"].item(), 10)
        # per-parameter counts survive a state_dict round trip
        m3 = copy.deepcopy(m2)
        o3 = Optimizer(m3.named_parameters(), spec="adamw")
        o3.load_state_dict(o2.state_dict())
        self.assertEqual(o3.step_count("2.weight"), 10)
        self.assertEqual(o3.step_count("0.bias"), 15)


class AllOrNothingSteps(unittest.TestCase):
    """Item 11: a failing step has stepped no group."""

    def test_bad_second_group_steps_nothing(self):
        torch.manual_seed(0)
        a = torch.randn(4, 4, requires_grad=True)
        b = torch.randn(4, requires_grad=True)
        opt = Optimizer([{"params": [("a", a)]}, {"params": [("b", b)], "lr": 1e-2}], spec="adamw")
        a.grad, b.grad = torch.ones(4, 4), torch.ones(4)
        opt.step()
        b.data = b.data.double()
        b.grad = torch.ones(4, dtype=torch.float64)
        before = a.detach().clone()
        with self.assertRaises(TypeError):
            opt.step()
        self.assertTrue(torch.equal(a.detach(), before), "group 1 was stepped by a step that failed in group 2")
        self.assertEqual(opt.step_count("a"), 1)

    def test_bad_hyperparameter_in_second_group(self):
        a = torch.randn(4, 4, requires_grad=True)
        b = torch.randn(4, requires_grad=True)
        opt = Optimizer([{"params": [("a", a)]}, {"params": [("b", b)]}], spec="adamw")
        a.grad, b.grad = torch.ones(4, 4), torch.ones(4)
        opt.param_groups[1]["lr"] = float("nan")
        before = a.detach().clone()
        with self.assertRaises(ValueError) as cm:
            opt.step()
        self.assertIn("`lr`", str(cm.exception))
        self.assertTrue(torch.equal(a.detach(), before))

    def test_a_nan_in_the_second_group_skips_or_raises_the_whole_step(self):
        # as with one group: skip and raise undo every group's step, so the outcome does not
        # depend on how the parameters are grouped (the first group used to keep its step)
        for policy in ("skip", "raise", "zero"):
            with self.subTest(policy=policy):
                torch.manual_seed(0)
                a = torch.randn(4, 4, requires_grad=True)
                b = torch.randn(4, requires_grad=True)
                opt = Optimizer([{"params": [("a", a)]}, {"params": [("b", b)], "lr": 1e-2}], spec="adamw", nonfinite=policy)
                a.grad, b.grad = torch.ones(4, 4), torch.ones(4)
                opt.step()
                before = a.detach().clone(), b.detach().clone(), {k: v.clone() for k, v in opt.state[a].items()}
                b.grad[2] = float("nan")
                if policy == "raise":
                    with self.assertRaises(opal.NonFiniteError):
                        opt.step()
                else:
                    opt.step()
                moved = not torch.equal(a.detach(), before[0])
                self.assertEqual(moved, policy == "zero")  # zero: only b's gradient is zeroed, a steps as usual
                self.assertEqual(not torch.equal(b.detach(), before[1]), policy == "zero")
                if policy != "zero":
                    self.assertTrue(all(torch.equal(v, before[2][k]) for k, v in opt.state[a].items()))
                    self.assertEqual(opt.step_count("a"), 1)
                self.assertEqual(opt.skipped_steps, 1 if policy == "skip" else 0)
                self.assertEqual(len(opt.nonfinite_events), 1)
                a.grad, b.grad = torch.ones(4, 4), torch.ones(4)  # and the next step goes on
                opt.step()
                self.assertEqual(opt.step_count("a"), 2 if policy != "zero" else 3)


    def test_an_error_in_a_later_group_undoes_the_earlier_groups_steps(self):
        # an error that is not about the values (a device's, a peer's, memory) stops the step in
        # group 1 of 3: under the policies that keep copies group 0 undoes its step, so the step
        # raises having changed nothing and the next one goes on; under "off" the error names the
        # group that keeps its step
        class DeviceLost:  # engine 1 fails as a lost device would, once its inputs are checked
            def __init__(self, engine):
                self.engine, self.fail = engine, True

            def __getattr__(self, name):
                return getattr(self.engine, name)

            def step(self, *args):
                if self.fail:
                    raise RuntimeError("CUDA error: device lost")
                return self.engine.step(*args)

        for policy in ("off", "raise", "skip", "zero"):
            with self.subTest(policy=policy):
                torch.manual_seed(0)
                ps = [torch.randn(4, 4, requires_grad=True), torch.randn(4, requires_grad=True), torch.randn(3, requires_grad=True)]
                opt = Optimizer([{"params": [(n, p)]} for n, p in zip("abc", ps)], spec="adamw", nonfinite=policy)
                for p in ps:
                    p.grad = torch.ones_like(p)
                opt.step()
                before = [p.detach().clone() for p in ps], [{k: v.clone() for k, v in opt.state[p].items()} for p in ps]
                opt._engines[1] = DeviceLost(opt._engines[1])
                with self.assertRaises(RuntimeError) as cm:
                    opt.step()
                notes = "\n".join(getattr(cm.exception, "__notes__", []))
                self.assertEqual(not torch.equal(ps[0].detach(), before[0][0]), policy == "off")  # group 0 keeps it only under off
                self.assertTrue(torch.equal(ps[1].detach(), before[0][1]) and torch.equal(ps[2].detach(), before[0][2]))
                if policy == "off":
                    self.assertEqual(opt.step_count("a"), 2)
                    self.assertIn("parameter group 0 of 3 had stepped before this error in group 1", notes)
                else:
                    self.assertTrue(all(torch.equal(v, before[1][0][k]) for k, v in opt.state[ps[0]].items()))
                    self.assertEqual(opt.step_count("a"), 1)
                    self.assertIn("undid it: the step changed nothing", notes)
                self.assertEqual([opt.step_count(n) for n in "bc"], [1, 1])
                self.assertEqual(opt.skipped_steps, 0)  # an error is not a skipped step
                opt._engines[1].fail = False
                opt.step()  # the next step goes on
                self.assertEqual([opt.step_count(n) for n in "abc"], [3 if policy == "off" else 2, 2, 2])
                self.assertEqual(opt.skipped_steps, 0)


class NonFiniteHyperparameters(unittest.TestCase):
    """Item 12: NaN, Inf and values past float32 are refused."""

    def test_constructor(self):
        w = torch.randn(4, 4, requires_grad=True)
        for bad in (float("nan"), float("inf"), -float("inf"), 1e308):
            with self.assertRaises(ValueError, msg=repr(bad)):
                Optimizer([("w", w)], spec="adamw", lr=bad)
        with self.assertRaises(TypeError):
            Optimizer([("w", w)], spec="adamw", lr="fast")

    def test_engine_refuses(self):
        w = torch.randn(4, 4, requires_grad=True)
        opt = Optimizer([("w", w)], spec="adamw")
        with self.assertRaises(opal.OpalError):
            opt._engines[0].set_hparam("lr", float("nan"))
        self.assertEqual(opt._engines[0].hparam("lr"), opt.param_groups[0]["lr"])


class LoadStateDictValidation(unittest.TestCase):
    """Item 14: load_state_dict checks types and ranges before anything changes."""

    def setUp(self):
        self.model, self.opt = model_and_opt()
        backward(self.model)
        self.opt.step()
        self.sd = self.opt.state_dict()

    def refused(self, sd, words):
        before = snapshot(self.model, self.opt)
        lr = self.opt.param_groups[0]["lr"]
        with self.assertRaises(opal.CheckpointError) as cm:
            self.opt.load_state_dict(sd)
        for w in words:
            self.assertIn(w, str(cm.exception))
        self.assertTrue(same(before, snapshot(self.model, self.opt)))
        self.assertEqual(self.opt.param_groups[0]["lr"], lr)

    def test_string_lr(self):
        sd = copy.deepcopy(self.sd)
        sd["param_groups"][0]["lr"] = "fast"
        self.refused(sd, ["`lr`", "not a number"])

    def test_nan_lr(self):
        sd = copy.deepcopy(self.sd)
        sd["param_groups"][0]["lr"] = float("nan")
        self.refused(sd, ["`lr`"])

    def test_step_out_of_range(self):
        for bad in (str(2 ** 63 - 1), "-1", "1.5", "many"):
            sd = copy.deepcopy(self.sd)
            sd["param_groups"][0]["opal"]["opal.step"] = bad
            self.refused(sd, ["step"])


class NoPickle(unittest.TestCase):
    """Item 15: pickling or copying points to state_dict()."""

    def test_pickle_and_copy(self):
        _, opt = model_and_opt()
        for f in (lambda: pickle.dumps(opt), lambda: copy.deepcopy(opt), lambda: copy.copy(opt)):
            with self.assertRaises(TypeError) as cm:
                f()
            self.assertIn("state_dict()", str(cm.exception))


STDLIB = ("adafactor adam adamuon adamw cautious_adamw lion muon muon_moonlight normuon paper_adam paper_adam_b1b1 paper_adam_factored "
          "paper_adamuon paper_adamuon_b1b1 paper_adamuon_factored paper_muon paper_muon_lookahead paper_other paper_psgd paper_shampoo10 "
          "paper_shampoo100 paper_signum paper_signum_lookahead paper_soap10 paper_soap100 paper_soap_b1b1 paper_soap_factored paper_spa "
          "paper_splus10 paper_splus100 paper_splus_lookahead sgd shampoo signum soap tiger").split()


class ZeroGradients(unittest.TestCase):
    """Item 8: every stdlib optimizer stays finite on all-zero, tiny and denormal gradients."""

    def test_stdlib_on_degenerate_gradients(self):
        for spec in STDLIB:
            for fill in (0.0, 1e-30, 1e-42, 1e-20):
                torch.manual_seed(0)
                w = torch.randn(6, 5, requires_grad=True)
                b = torch.randn(5, requires_grad=True)
                opt = Optimizer([("w", w), ("b", b)], spec=spec)
                for _ in range(3):
                    w.grad = torch.full_like(w, fill)
                    b.grad = torch.full_like(b, fill)
                    opt.step()
                for name, t in (("w", w), ("b", b)):
                    self.assertTrue(bool(torch.isfinite(t).all()), f"{spec}: `{name}` went non-finite on gradients of {fill}")


class EmptyParameters(unittest.TestCase):
    """A parameter with no elements (shape [0, n]: a rank-0 adapter, an empty embedding) is
    passed over as torch.optim passes over it; it was refused ("every dimension must be
    positive"), so such a model could not be trained at all."""

    def test_an_empty_parameter_is_passed_over(self):
        for spec in ("adamw", "muon", "soap"):
            with self.subTest(spec=spec):
                model, opt = model_and_opt(spec)
                torch.manual_seed(0)
                ref_model = copy.deepcopy(model)
                ref = Optimizer(ref_model.named_parameters(), spec=spec)
                empty = torch.nn.Parameter(torch.zeros(0, 16))
                opt.add_param_group({"params": [empty], "param_names": ["adapter.weight"]})
                for step in range(3):
                    backward(model, step)
                    backward(ref_model, step)
                    empty.grad = torch.zeros(0, 16)
                    opt.step()
                    ref.step()
                for a, b in zip(model.parameters(), ref_model.parameters()):
                    self.assertTrue(torch.equal(a, b))  # the others step exactly as without it
                self.assertEqual(opt.state[empty], {})
                sd = opt.state_dict()
                self.assertNotIn("adapter.weight", sd["state"])
                self.assertIn("adapter.weight", sd["param_groups"][1]["param_names"])
                opt.load_state_dict(sd)
                with self.assertRaisesRegex(KeyError, "has no elements: it is never stepped and has no state"):
                    opt.route("adapter.weight")

    def test_an_empty_parameter_among_others_in_one_group(self):
        w, e = torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.zeros(2, 0, 5))
        opt = Optimizer([("w", w), ("e", e)], spec="adamw", lr=1e-2)
        w.grad, e.grad = torch.ones(3, 4), torch.zeros(2, 0, 5)
        opt.step()
        self.assertEqual(opt.step_count("w"), 1)
        self.assertIn("1 parameter", opt.routes())
        e.grad = None
        opt.step()

    def test_a_process_forked_after_steps_steps_on_with_the_same_bits(self):
        # multiprocessing's default on Linux: a sweep forking trials from a process that stepped.
        # libgomp's threads stay in the parent: the child's first parallel loop used to wait for
        # them forever. Big enough that the kernels, copies and Muon's products use the pool.
        import multiprocessing
        import signal
        threads = torch.get_num_threads()
        self.addCleanup(torch.set_num_threads, threads)
        torch.set_num_threads(2)  # the OpenMP team of this thread, Opal's too (torch takes one per physical core)
        torch.manual_seed(0)
        w, b = torch.nn.Parameter(torch.randn(1024, 1024)), torch.nn.Parameter(torch.randn(256, 256))
        opts = [Optimizer([("w", w)], spec="adamw", lr=1e-2, nonfinite="skip"), Optimizer([("b", b)], spec="muon", lr=0.02)]

        def steps(first, last):
            for s in range(first, last + 1):
                g = torch.Generator().manual_seed(s)
                w.grad, b.grad = torch.randn(w.shape, generator=g), torch.randn(b.shape, generator=g)
                for o in opts:
                    o.step()
            # (no torch.cat: torch's own parallel loops wait for the parent's threads in the child)
            return w.detach().numpy().tobytes() + b.detach().numpy().tobytes()

        steps(1, 2)
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()

        def child():
            signal.alarm(60)  # a child waiting for the parent's threads dies here
            queue.put(steps(3, 4))

        proc = ctx.Process(target=child)
        proc.start()
        got = queue.get(timeout=90)
        proc.join(60)
        self.assertEqual(proc.exitcode, 0)
        self.assertEqual(got, steps(3, 4))


if __name__ == "__main__":
    unittest.main()
