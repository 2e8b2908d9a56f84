"""Mixed precision in opal.torch (issue 17): bf16 and fp16 models stepped in place, zero-copy,
exactly as the f32 program with the same roundings; stochastic rounding keeps weight decay that
rounding to nearest loses; a parameter's dtype is fixed once the optimizer is built."""
import unittest
import warnings

import torch
import torch.nn as nn

import opal
from opal.torch import Optimizer


def make_model(dtype):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(16, 24), nn.Tanh(), nn.Linear(24, 8))
    return m.to(dtype)


def grads_for(model, step):
    # (torch 1.13 has no float16 matmul on the CPU: the gradients are drawn, in the model's dtype)
    gen = torch.Generator().manual_seed(100 + step)
    for p in model.parameters():
        p.grad = (0.1 * torch.randn(p.shape, generator=gen)).to(p.dtype)


def sgd_steps(value, n, steps, master, **options):
    """A bf16 vector of n `value`s after `steps` SGD steps of +1e-3 (lr 1, no momentum): each
    below half of bf16's ulp at 1 (2^-7)."""
    w = nn.Parameter(torch.full((n,), value, dtype=torch.bfloat16))
    opt = Optimizer([("w", w)], spec="sgd", lr=1.0, b1=0.0, master_weights=master, **options)
    for _ in range(steps):
        w.grad = torch.full_like(w, -1e-3)
        opt.step()
    return w, opt


class SixteenBit(unittest.TestCase):
    def check_rounded_reference(self, spec, dtype):
        """`spec` on a `dtype` model against the f32 program on f32 copies of its parameters and
        gradients, each parameter rounded to `dtype` after every step: the same bits."""
        low = make_model(dtype)
        ref = {n: p.detach().float().clone().requires_grad_() for n, p in low.named_parameters()}
        opt = Optimizer(low, spec=spec, lr=1e-2)
        with warnings.catch_warnings():  # (the copies have no roles; neither has this model: no embedding)
            warnings.simplefilter("ignore")
            opt_ref = Optimizer(list(ref.items()), spec=spec, lr=1e-2)
        ptrs = {n: p.data_ptr() for n, p in low.named_parameters()}
        for step in range(3):
            grads_for(low, step)
            for n, p in low.named_parameters():
                ref[n].grad = p.grad.float()
            opt.step()
            opt_ref.step()
            with torch.no_grad():
                for p in ref.values():
                    p.copy_(p.to(dtype).float())
        for n, p in low.named_parameters():
            self.assertEqual(p.dtype, dtype)
            self.assertEqual(p.data_ptr(), ptrs[n], "stepped in place")
            self.assertTrue(torch.equal(p.float(), ref[n]), f"{spec} {dtype} {n}")

    def test_adamw_lion_muon_match_the_rounded_f32_program(self):
        for spec in ("adamw", "lion", "muon"):
            for dtype in (torch.bfloat16, torch.float16):
                with self.subTest(spec=spec, dtype=dtype):
                    self.check_rounded_reference(spec, dtype)

    def test_stochastic_rounding_keeps_weight_decay(self):
        # lr * wd = 1e-5 per step, far below bf16's half ulp at 1 (2^-9)
        def run(rounding):
            w = nn.Parameter(torch.ones(4096, dtype=torch.bfloat16))
            opt = Optimizer([("w", w)], spec="adamw", lr=1e-3, weight_decay=0.01, rounding=rounding, seed=3)
            for _ in range(500):
                w.grad = torch.zeros_like(w)
                opt.step()
            return w.float().mean().item()

        self.assertEqual(run("nearest"), 1.0)
        self.assertAlmostEqual(run("stochastic"), (1 - 1e-5) ** 500, delta=2e-4)

    def test_master_weights_accumulate_small_updates(self):
        w, _ = sgd_steps(1.0, 16, 8, master=False)
        self.assertTrue(torch.equal(w, torch.ones(16, dtype=torch.bfloat16)))
        w, opt = sgd_steps(1.0, 16, 8, master=True)
        self.assertTrue(torch.equal(w.float(), torch.full((16,), 1.0078125)))
        self.assertEqual(opt.state[w]["master"].dtype, torch.float32)
        self.assertAlmostEqual(opt.state[w]["master"][0].item(), 1 + 8 * float(torch.tensor(1e-3, dtype=torch.bfloat16)), places=5)

    def test_a_parameter_keeps_its_dtype_and_bad_options_are_refused(self):
        m = make_model(torch.bfloat16)
        opt = Optimizer(m, spec="adamw")
        grads_for(m, 0)
        before = [p.detach().clone() for p in m.parameters()]
        m[0].weight.data = m[0].weight.data.float()
        m[0].weight.grad = m[0].weight.grad.float()
        with self.assertRaisesRegex(ValueError, r"`0.weight` is torch.float32 now, but the optimizer was built for torch.bfloat16"):
            opt.step()
        for b, p in zip(before[1:], list(m.parameters())[1:]):
            self.assertTrue(torch.equal(b, p), "a refused step changed nothing")
        # the engine below opal.torch: an unknown dtype name, a wrong count of gradient dtypes
        from opal import _opal
        c = _opal.Compiled("adamw", "")
        w = torch.zeros(4)
        with self.assertRaisesRegex(Exception, r"dtype `f64` is not one Opal steps \(f32, bf16, f16\)"):
            _opal.Optimizer(c, [("w", [4], w.data_ptr(), "", "f64")])
        engine = _opal.Optimizer(c, [("w", [4], w.data_ptr(), "", "f32")])
        g = torch.zeros(4)
        with self.assertRaisesRegex(Exception, "step needs 1 gradient dtypes, got 2"):
            engine.step([w.data_ptr()], [g.data_ptr()], 0, ["f32", "f32"])
        with self.assertRaisesRegex(Exception, "dtype `f8`"):
            engine.step([w.data_ptr()], [g.data_ptr()], 0, ["f8"])
        with self.assertRaisesRegex(ValueError, "rounding must be nearest or stochastic"):
            Optimizer(m, spec="adamw", rounding="up")
        with self.assertRaisesRegex(ValueError, "seed must be an integer"):
            Optimizer(m, spec="adamw", rounding="stochastic", seed=-1)


def adam_spec(storage):
    st = f": {storage}" if storage else ""
    return (f"component mom16(beta = 0.9) {{\n  state m{st} = zeros\n  m = beta * m + (1 - beta) * u\n  u = m / (1 - beta ^ t)\n}}\n"
            f"component adapt16(beta = 0.999, eps = 1e-8) {{\n  state v{st} = zeros\n  v = beta * v + (1 - beta) * g * g\n"
            "  u = u / (sqrt(v / (1 - beta ^ t)) + eps)\n}\n"
            "optimizer o(lr = 1e-2) {\n  other: mom16 -> adapt16 -> scale(lr)\n}\n")


class Bf16State(unittest.TestCase):
    def test_views_are_bfloat16_and_state_dicts_convert_both_ways(self):
        torch.manual_seed(0)
        w = nn.Parameter(torch.randn(6, 5))
        opt = Optimizer([("w", w)], spec=adam_spec("bf16"))
        w.grad = torch.randn(6, 5)
        opt.step()
        m = opt.state[w]["mom16.m"]
        self.assertEqual(m.dtype, torch.bfloat16)  # a live view of the 16-bit storage
        self.assertTrue(torch.equal(m.float(), (0.1 * w.grad).bfloat16().float()))
        sd = opt.state_dict()
        self.assertEqual(sd["state"]["w"]["adapt16.v"].dtype, torch.bfloat16)
        # into an optimizer that keeps the state as f32: converted (exactly: bf16 values are f32 values)
        w32 = nn.Parameter(w.detach().clone())
        opt32 = Optimizer([("w", w32)], spec=adam_spec(""))
        with self.assertWarnsRegex(UserWarning, r"converted to this spec's storage: .*w/adapt16\.v \(BF16 -> F32\)"):
            opt32.load_state_dict(sd)
        self.assertFalse(opt32.last_load_reports[0]["spec_changed"])  # the same spec, stored otherwise
        self.assertEqual(opt32.state[w32]["adapt16.v"].dtype, torch.float32)
        self.assertTrue(torch.equal(opt32.state[w32]["adapt16.v"], sd["state"]["w"]["adapt16.v"].float()))
        # and back: f32 state rounded into bf16 storage
        w32.grad = torch.randn(6, 5)
        opt32.step()
        opt.load_state_dict(opt32.state_dict())
        self.assertTrue(torch.equal(opt.state[w]["mom16.m"], opt32.state[w32]["mom16.m"].bfloat16()))


class Q8State(unittest.TestCase):
    """Blockwise 8-bit state (`state(q8)`): the codes are live uint8 views, the scales float32
    slots of their own; state_dicts keep both and convert to and from f32 state."""

    SPEC = "optimizer o(lr = 1e-2) {\n  other state(q8): adamw(lr = lr, wd = 0)\n}\n"

    def test_views_and_state_dicts(self):
        torch.manual_seed(0)
        w = nn.Parameter(torch.randn(30, 20))
        opt = Optimizer([("w", w)], spec=self.SPEC)
        w.grad = torch.randn(30, 20)
        opt.step()
        codes, scales = opt.state[w]["adapt.v"], opt.state[w]["adapt.v.absmax"]
        self.assertEqual((codes.dtype, tuple(codes.shape)), (torch.uint8, (30, 20)))
        self.assertEqual((scales.dtype, tuple(scales.shape)), (torch.float32, (3,)))  # 600 elements, blocks of 256
        self.assertTrue(bool((scales > 0).all()))  # second moments: the unsigned code
        before = codes.clone()
        w.grad = 3 * torch.randn(30, 20)
        opt.step()
        self.assertFalse(torch.equal(before, codes))  # live
        sd = opt.state_dict()
        self.assertEqual(sd["state"]["w"]["momentum.m"].dtype, torch.uint8)
        # into f32 state: the values the codes stand for (v dequantized, close to the f32 run's)
        w32 = nn.Parameter(w.detach().clone())
        opt32 = Optimizer([("w", w32)], spec=self.SPEC.replace(" state(q8)", ""))
        with self.assertWarnsRegex(UserWarning, r"w/adapt\.v \(q8\(256\) -> F32\)"):
            opt32.load_state_dict(sd)
        self.assertTrue(any("(q8(256) -> F32)" in c for c in opt32.last_load_reports[0]["converted"]))
        self.assertFalse(opt32.last_load_reports[0]["spec_changed"])  # the scales slots are storage, not spec
        v = opt32.state[w32]["adapt.v"]
        self.assertEqual(v.dtype, torch.float32)
        self.assertTrue(bool((v > 0).all()))
        # and back: quantized again to the same codes
        opt.load_state_dict(opt32.state_dict())
        self.assertTrue(torch.equal(opt.state[w]["adapt.v"], sd["state"]["w"]["adapt.v"]))
        # codes that are not uint8 are refused, and nothing changes
        bad = opt.state_dict()
        bad["state"]["w"]["adapt.v"] = bad["state"]["w"]["adapt.v"].float()
        with self.assertRaises(Exception) as e:
            opt.load_state_dict(bad)
        self.assertIn("adapt.v", str(e.exception))
        self.assertTrue(torch.equal(opt.state[w]["adapt.v"], sd["state"]["w"]["adapt.v"]))

    def test_state_argument(self):
        # state="q8" stores the stdlib adamw as the spec's own `state(q8)` does, byte for byte
        torch.manual_seed(0)
        runs = []
        for kwargs in ({"spec": self.SPEC}, {"spec": "adamw", "state": "q8", "lr": 1e-2, "weight_decay": 0}):
            w = nn.Parameter(torch.ones(30, 20))
            opt = Optimizer([("w", w)], **kwargs)
            for s in range(3):
                w.grad = torch.sin(torch.arange(600.0).reshape(30, 20) * (s + 1))
                opt.step()
            runs.append((w.detach().clone(), opt.state[w]["adapt.v"].clone(), opt.state[w]["adapt.v.absmax"].clone()))
        for a, b in zip(*runs):
            self.assertTrue(torch.equal(a, b))
        self.assertEqual(runs[1][1].dtype, torch.uint8)
        w = nn.Parameter(torch.ones(4, 4))
        for bad, error in (("q8(100)", "power of two"), ("f16", "unknown storage `f16`"), ("bf16, sto", "unknown option `sto`")):
            with self.assertRaises(opal.SpecError) as e:
                Optimizer([("w", w)], spec="adamw", state=bad)
            self.assertIn(error, str(e.exception))
        with self.assertRaises(TypeError):
            Optimizer([("w", w)], spec="adamw", state=8)

    def test_a_transposed_bf16_gradient_steps_as_its_contiguous_copy(self):
        torch.manual_seed(0)
        g = torch.randn(4, 8, dtype=torch.bfloat16)
        a = nn.Parameter(torch.randn(8, 4, dtype=torch.bfloat16))
        b = nn.Parameter(a.detach().clone())
        oa, ob = Optimizer([a], spec="adamw", state="q8"), Optimizer([b], spec="adamw", state="q8")
        a.grad, b.grad = g.t(), g.t().contiguous()
        self.assertFalse(a.grad.is_contiguous())
        before = a.detach().clone()
        oa.step()
        ob.step()
        self.assertTrue(torch.equal(a, b))
        self.assertFalse(torch.equal(a, before))  # it stepped

    def test_groups_of_every_dtype_with_q8_state_save_and_resume_as_f32(self):
        # bf16, f32 and f16 parameters in two groups, all with q8 state: each keeps its dtype, a
        # step without gradients changes nothing, and the state resumes in an f32-state optimizer
        torch.manual_seed(0)
        a = nn.Parameter(torch.randn(16, 8, dtype=torch.bfloat16))
        b = nn.Parameter(torch.randn(8))
        c = nn.Parameter(torch.randn(4, 4, dtype=torch.float16))
        groups = lambda: [{"params": [a], "lr": 1e-2}, {"params": [b, c]}]
        opt = Optimizer(groups(), spec="adamw", state="q8")
        for _ in range(3):
            for p in (a, b, c):
                p.grad = torch.randn_like(p)
            opt.step()
        self.assertEqual([p.dtype for p in (a, b, c)], [torch.bfloat16, torch.float32, torch.float16])
        self.assertTrue(all(bool(torch.isfinite(p.float()).all()) for p in (a, b, c)))
        self.assertEqual(opt.state[c]["momentum.m"].dtype, torch.uint8)
        opt.zero_grad(set_to_none=True)
        before = [p.detach().clone() for p in (a, b, c)]
        opt.step()
        self.assertTrue(all(torch.equal(x, p) for x, p in zip(before, (a, b, c))))
        sd = opt.state_dict()
        f32 = Optimizer(groups(), spec="adamw")
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            f32.load_state_dict(sd)
        converted = [x for r in f32.last_load_reports for x in r["converted"]]
        self.assertEqual(len(converted), 6, converted)  # m and v of three parameters
        self.assertEqual(f32.state[c]["adapt.v"].dtype, torch.float32)
        self.assertTrue(bool((f32.state[a]["adapt.v"] >= 0).all()))

    def test_q8_adamw_tracks_f32_adamw_on_a_model(self):
        def train(spec):
            torch.manual_seed(1)
            model = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 1))
            opt = Optimizer(model, spec=spec, lr=3e-3)
            gen = torch.Generator().manual_seed(2)
            x = torch.randn(512, 32, generator=gen)
            y = torch.sin(x[:, :1] * 2) + x[:, 1:2] * x[:, 2:3]
            losses = []
            for _ in range(200):
                loss = ((model(x) - y) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            return losses
        # the model fits its data: the losses fall exponentially, and q8 state reaches each level
        # the f32 run reaches within a tenth more steps
        f32, q8 = train(self.SPEC.replace(" state(q8)", "")), train(self.SPEC)
        self.assertLess(q8[-1], 1e-3 * q8[0])
        for s in (40, 80, 120, 160):
            reached = next((i for i, x in enumerate(q8) if x <= f32[s]), len(q8))
            self.assertLessEqual(reached, s + s // 10, f"f32 reached {f32[s]} at step {s}")


class MasterCopiesFollowTheirParameters(unittest.TestCase):
    """A 16-bit parameter with an f32 master copy, written outside the optimizer (pretrained
    weights loaded after it was built): the copy takes the new values, where they are not its own
    roundings (opal/_master.py). Before, the next step wrote the copy back over them."""

    DTYPES = (torch.bfloat16, torch.float16)

    def train(self, model, opt, steps, first=0):
        for s in range(first, first + steps):
            grads_for(model, s)
            opt.step()

    def run_of(self, model, opt):
        return [p.detach().clone() for p in model.parameters()] + [opt.state[p]["master"].clone() for p in model.parameters()]

    def assert_same(self, a, b, what):
        for x, y in zip(a, b):
            self.assertTrue(torch.equal(x, y), what)

    def test_weights_loaded_after_building_are_stepped_not_overwritten(self):
        for dtype in self.DTYPES:
            for rounding in ("nearest", "stochastic"):
                with self.subTest(dtype=dtype, rounding=rounding):
                    torch.manual_seed(5)
                    pretrained = {k: 0.5 * torch.randn(v.shape).to(dtype) for k, v in make_model(dtype).state_dict().items()}
                    after = make_model(dtype)  # built, then the weights loaded, as a fine-tuning script may
                    opt_after = Optimizer(after, spec="adamw", lr=1e-2, master_weights=True, rounding=rounding, seed=1)
                    after.load_state_dict(pretrained)
                    before = make_model(dtype)  # the weights loaded first
                    before.load_state_dict(pretrained)
                    opt_before = Optimizer(before, spec="adamw", lr=1e-2, master_weights=True, rounding=rounding, seed=1)
                    self.train(after, opt_after, 3)
                    self.train(before, opt_before, 3)
                    self.assert_same(self.run_of(after, opt_after), self.run_of(before, opt_before), "built before or after loading: the same run")
                    # new memory for a parameter (`p.data = ...`) is followed too
                    w = after[0].weight
                    w.data = torch.full_like(w, 2.0)
                    w.grad = torch.zeros_like(w)
                    opt_after.step()
                    self.assertLess((w.float() - 2.0).abs().max().item(), 0.05, "stepped from the new values")

    def test_writes_torch_does_not_count_are_seen_before_the_first_step(self):
        # DDP's broadcast of rank 0's weights and writes through `.data` leave no version: they
        # are seen at the first step after building the optimizer or loading its state, not later
        w = nn.Parameter(torch.zeros(8, dtype=torch.bfloat16))
        opt = Optimizer([("w", w)], spec="sgd", lr=1.0, b1=0.0, master_weights=True)
        w.data.copy_(torch.full((8,), 3.0))  # (no version)
        w.grad = torch.zeros_like(w)
        opt.step()
        self.assertTrue(torch.equal(w.float(), torch.full((8,), 3.0)))
        self.assertTrue(torch.equal(opt.state[w]["master"], torch.full((8,), 3.0)))
        w.data.copy_(torch.full((8,), 4.0))  # later, unseen: the copy's value comes back
        opt.step()
        self.assertTrue(torch.equal(w.float(), torch.full((8,), 3.0)))
        state = opt.state_dict()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt.load_state_dict(state)
        w.data.copy_(torch.full((8,), 5.0))
        opt.step()
        self.assertTrue(torch.equal(w.float(), torch.full((8,), 5.0)), "seen at the first step after a load")

    def test_a_skipped_step_keeps_the_copy_of_the_new_weights(self):
        # nonfinite="skip" undoes a step from copies made after the master copy took the weights
        w, opt = sgd_steps(0.0, 8, 1, master=True, nonfinite="skip")
        with torch.no_grad():
            w.copy_(torch.full((8,), 3.0))
        w.grad = torch.zeros_like(w)
        w.grad[2] = float("nan")
        opt.step()
        self.assertEqual(opt.skipped_steps, 1)
        self.assertTrue(torch.equal(w.float(), torch.full((8,), 3.0)))
        self.assertTrue(torch.equal(opt.state[w]["master"], torch.full((8,), 3.0)))
        w.grad = torch.full_like(w, -1e-3)
        opt.step()
        self.assertTrue(torch.equal(opt.state[w]["master"], torch.full((8,), 3.0) + float(torch.tensor(1e-3, dtype=torch.bfloat16))))

    def test_loading_the_optimizer_before_or_after_the_model_resumes_exactly(self):
        for dtype in self.DTYPES:
            with self.subTest(dtype=dtype):
                model = make_model(dtype)
                opt = Optimizer(model, spec="adamw", lr=1e-3, master_weights=True)
                self.train(model, opt, 3)
                weights, state = {k: v.clone() for k, v in model.state_dict().items()}, opt.state_dict()
                self.train(model, opt, 3, first=3)
                whole = self.run_of(model, opt)
                for model_first in (True, False):
                    resumed = make_model(dtype)
                    with torch.no_grad():
                        for p in resumed.parameters():
                            p.mul_(-3)  # not the weights saved
                    ropt = Optimizer(resumed, spec="adamw", lr=1e-3, master_weights=True)
                    if model_first:
                        resumed.load_state_dict(weights)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ropt.load_state_dict(state)
                    if not model_first:  # the weights are the copies' roundings: the copies keep their bits
                        resumed.load_state_dict(weights)
                    self.train(resumed, ropt, 3, first=3)
                    self.assert_same(self.run_of(resumed, ropt), whole, f"resumed, the model loaded {'first' if model_first else 'last'}")

    def test_only_the_elements_written_take_the_parameter_s_value(self):
        w, opt = sgd_steps(1.0, 16, 4, master=True)  # the copies 4e-3 above their roundings
        kept = opt.state[w]["master"].clone()
        self.assertTrue(bool((kept != w.float()).all()))
        with torch.no_grad():
            w[3] = 5.0
            w[7] = w[7].item()  # written, to the value it has: its copy keeps its bits
        w.grad = torch.zeros_like(w)
        opt.step()
        master = opt.state[w]["master"]
        self.assertEqual(master[3].item(), 5.0)
        self.assertTrue(torch.equal(master[torch.arange(16) != 3], kept[torch.arange(16) != 3]))
        # a copy gone non-finite takes finite weights loaded over it
        with torch.no_grad():
            master[0] = float("nan")
            w.copy_(torch.full_like(w, 0.25))
        opt.step()
        self.assertTrue(torch.equal(opt.state[w]["master"], torch.full((16,), 0.25)))

    def test_which_values_are_a_copy_s_roundings(self):
        from opal._master import rounds_from
        torch.manual_seed(0)
        for dtype in self.DTYPES:
            info = torch.finfo(dtype)
            # copies from the dtype's subnormals to past its largest value, both signs, and exact ones
            mags = torch.cat([torch.exp(torch.empty(4000).uniform_(-110, 100)), torch.tensor([0.0, info.tiny, info.max, info.max * 1.0001])])
            master = torch.cat([mags, -mags, torch.randn(300).to(dtype).float()]).float()
            master = master[(master.abs() <= 3e38)]
            rne = master.to(dtype)
            words = rne.view(torch.int16).to(torch.int32)
            for step in (-2, -1, 0, 1, 2):  # the rounding to nearest and the dtype's values around it
                cand = (words + step).to(torch.int16).view(dtype)
                pf = cand.float()
                nearest = (step == 0) & (torch.isfinite(pf) | (master.abs() > info.max))  # (an infinity past the largest value)
                self.assertTrue(torch.equal(rounds_from(cand, master), nearest), f"{dtype} step {step}")
                # rounding stochastically (bf16): also the next value on the copy's side
                lo, hi = torch.minimum(rne.float(), pf), torch.maximum(rne.float(), pf)
                beside = (abs(step) == 1) & (lo <= master) & (master <= hi) & (rne.float() != master)
                beside &= torch.isfinite(pf) | (master.abs() > info.max)
                want = nearest | beside if dtype == torch.bfloat16 else nearest
                self.assertTrue(torch.equal(rounds_from(cand, master, stochastic=True), want), f"{dtype} step {step}, stochastic")
            self.assertTrue(bool(rounds_from(torch.tensor([float("inf"), float("-inf")]).to(dtype), torch.tensor([3.4e38, -3.4e38])).all()))
            self.assertFalse(bool(rounds_from(torch.tensor([float("inf")]).to(dtype), torch.tensor([1.0])).any()))
            self.assertTrue(bool(rounds_from(torch.tensor([float("nan")]).to(dtype), torch.tensor([float("nan")])).all()))
            self.assertFalse(bool(rounds_from(torch.tensor([1.0]).to(dtype), torch.tensor([float("nan")])).any()))


if __name__ == "__main__":
    unittest.main()
