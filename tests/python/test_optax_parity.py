"""The stdlib's optax family against straightforward references written from optax's published
formulas (optax/_src/transform.py, alias.py, contrib): each replayed on the same recorded
gradients as test_stdlib_parity.py, 30 steps, several shapes, options on and off, to 1e-5 of the
distance travelled plus one float32 ulp of the weights per step.

Run: PYTHONPATH=build/python:tests/python python3 -m unittest tests/python/test_optax_parity.py -v
"""
import unittest

import torch

from test_stdlib_parity import replay


class Reference:
    """A reference optimizer: `update(p, g, s, t)` returns the step u (w <- w - u) from the
    parameter, its gradient, its state dict and the 1-based step count."""

    def __init__(self, params, **hp):
        self.params, self.hp = params, hp
        self.state = {p: {} for p in params}
        self.t = 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        for p in self.params:
            p.sub_(self.update(p.detach().clone(), p.grad, self.state[p], self.t))


def zeros(s, p, *names):
    for n in names:
        s.setdefault(n, torch.zeros_like(p))


class AdaBelief(Reference):
    def update(self, p, g, s, t):
        h = dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16) | self.hp
        zeros(s, p, "mu", "nu")
        s["mu"] = h["b1"] * s["mu"] + (1 - h["b1"]) * g
        s["nu"] = h["b2"] * s["nu"] + (1 - h["b2"]) * (g - s["mu"]) ** 2 + h["eps_root"]
        mh, nh = s["mu"] / (1 - h["b1"] ** t), s["nu"] / (1 - h["b2"] ** t)
        return h["lr"] * mh / (nh.sqrt() + h["eps"])


class Yogi(Reference):
    def update(self, p, g, s, t):
        h = dict(lr=1e-2, b1=0.9, b2=0.999, eps=1e-3, acc0=1e-6) | self.hp
        s.setdefault("mu", torch.full_like(p, h["acc0"]))
        s.setdefault("nu", torch.full_like(p, h["acc0"]))
        s["mu"] = h["b1"] * s["mu"] + (1 - h["b1"]) * g
        s["nu"] = s["nu"] - (1 - h["b2"]) * torch.sign(s["nu"] - g * g) * g * g
        mh, nh = s["mu"] / (1 - h["b1"] ** t), s["nu"] / (1 - h["b2"] ** t)
        return h["lr"] * mh / (nh.sqrt() + h["eps"])


def trust(u, p, coeff=1.0, eps=0.0):
    pn, un = p.norm(), u.norm()
    return u if pn == 0 or un == 0 else u * (coeff * pn / (un + eps))


class Lamb(Reference):
    def update(self, p, g, s, t):
        h = dict(lr=1e-3, b1=0.9, b2=0.999, eps=1e-6, wd=0.0) | self.hp
        zeros(s, p, "mu", "nu")
        s["mu"] = h["b1"] * s["mu"] + (1 - h["b1"]) * g
        s["nu"] = h["b2"] * s["nu"] + (1 - h["b2"]) * g * g
        u = s["mu"] / (1 - h["b1"] ** t) / ((s["nu"] / (1 - h["b2"] ** t)).sqrt() + h["eps"]) + h["wd"] * p
        return h["lr"] * trust(u, p)


class Lars(Reference):
    def update(self, p, g, s, t):
        h = dict(lr=0.1, wd=0.0, trust=1e-3, eps=0.0, momentum=0.9, nesterov=False) | self.hp
        zeros(s, p, "trace")
        u = h["lr"] * trust(g + h["wd"] * p, p, h["trust"], h["eps"])
        s["trace"] = u + h["momentum"] * s["trace"]
        return u + h["momentum"] * s["trace"] if h["nesterov"] else s["trace"]


class NovoGrad(Reference):
    def update(self, p, g, s, t):
        h = dict(lr=1e-3, b1=0.9, b2=0.25, eps=1e-6, wd=0.0) | self.hp
        n2 = g.norm() ** 2
        s["nu"] = n2 if t == 1 else h["b2"] * s["nu"] + (1 - h["b2"]) * n2
        a = g / (s["nu"].sqrt() + h["eps"]) + h["wd"] * p
        s["mu"] = a if t == 1 else h["b1"] * s["mu"] + a
        return h["lr"] * s["mu"]


class AdEMAMix(Reference):
    def update(self, p, g, s, t):
        h = dict(lr=1e-3, b1=0.9, b2=0.999, b3=0.9999, alpha=5.0, eps=1e-8, wd=0.0) | self.hp
        zeros(s, p, "m1", "m2", "nu")
        s["m1"] = h["b1"] * s["m1"] + (1 - h["b1"]) * g
        s["m2"] = h["b3"] * s["m2"] + (1 - h["b3"]) * g
        s["nu"] = h["b2"] * s["nu"] + (1 - h["b2"]) * g * g
        u = (s["m1"] / (1 - h["b1"] ** t) + h["alpha"] * s["m2"]) / ((s["nu"] / (1 - h["b2"] ** t)).sqrt() + h["eps"])
        return h["lr"] * (u + h["wd"] * p)


class Adan(Reference):
    def update(self, p, g, s, t):
        h = dict(lr=1e-3, b1=0.98, b2=0.92, b3=0.99, eps=1e-8, wd=0.0) | self.hp
        zeros(s, p, "m", "v", "n", "g")
        d = torch.zeros_like(g) if t == 1 else g - s["g"]
        s["m"] = h["b1"] * s["m"] + (1 - h["b1"]) * g
        s["v"] = h["b2"] * s["v"] + (1 - h["b2"]) * d
        s["n"] = h["b3"] * s["n"] + (1 - h["b3"]) * (g + (1 - h["b2"]) * d) ** 2
        s["g"] = g.clone()
        mh, vh, nh = s["m"] / (1 - h["b1"] ** t), s["v"] / (1 - h["b2"] ** t), s["n"] / (1 - h["b3"] ** t)
        return h["lr"] * ((mh + (1 - h["b2"]) * vh) / (nh.sqrt() + h["eps"]) + h["wd"] * p)


def rms(x):
    return (x.pow(2).mean()).sqrt()


def adafactor_direction(g, s, b2, sq, factored):
    """G / sqrt(V) with Shazeer & Stern's V: factored r c^T / mean(r) from the row and column
    means of sq over the last two dims (per matrix of a batch, as Hugging Face and torch do), or
    the full EMA of sq; the moments decay by b2 (in s)."""
    if factored:
        s.setdefault("r", torch.zeros(g.shape[:-1]))
        s.setdefault("c", torch.zeros(g.shape[:-2] + g.shape[-1:]))
        s["r"] = b2 * s["r"] + (1 - b2) * sq.mean(-1)
        s["c"] = b2 * s["c"] + (1 - b2) * sq.mean(-2)
        return g / (s["r"] / s["r"].mean(-1, keepdim=True)).sqrt()[..., :, None] / s["c"].sqrt()[..., None, :]
    s.setdefault("v", torch.zeros_like(g))
    s["v"] = b2 * s["v"] + (1 - b2) * sq
    return g / s["v"].sqrt()


class AdafactorPaper(Reference):
    """Shazeer & Stern's Adafactor with the relative step size, as Hugging Face's
    Adafactor(relative_step=True, scale_parameter=True, warmup_init=False)."""

    def update(self, p, g, s, t):
        h = dict(lr=1e-2, decay=0.8, eps1=1e-30, eps2=1e-3, d=1.0, wd=0.0) | self.hp
        b2 = 1 - t ** -h["decay"]
        u = adafactor_direction(g, s, b2, g * g + h["eps1"], g.dim() >= 2)
        u = u / max(1.0, (rms(u) / h["d"]).item())
        step = min(h["lr"], t ** -0.5) * max(h["eps2"], rms(p).item())
        return step * (u + h["wd"] * p)


class AdafactorTorch(Reference):
    """torch.optim.Adafactor (torch >= 2.5) as its documentation and source give it: a >2-D
    tensor factored per matrix of its last two dims (row_var [..., m, 1], col_var [..., 1, n])."""

    def update(self, p, g, s, t):
        h = dict(lr=1e-2, decay=0.8, eps1=torch.finfo(torch.float32).eps, eps2=1e-3, d=1.0, wd=0.0) | self.hp
        w = t ** -h["decay"]
        if g.dim() >= 2:
            s.setdefault("r", torch.zeros(g.shape[:-1] + (1,)))
            s.setdefault("c", torch.zeros(g.shape[:-2] + (1,) + g.shape[-1:]))
            s["r"].lerp_((g * g).mean(-1, keepdim=True), w)
            s["c"].lerp_((g * g).mean(-2, keepdim=True), w)
            var = s["r"] @ s["c"] / s["r"].mean(-2, keepdim=True).clamp(min=h["eps1"])
        else:
            s.setdefault("v", torch.zeros_like(g))
            s["v"].lerp_(g * g, w)
            var = s["v"].clone()
        u = var.clamp(min=h["eps1"] ** 2).rsqrt() * g
        alpha = max(h["eps2"], rms(p).item()) * min(h["lr"], t ** -0.5)
        denom = max(1.0, (rms(u) / h["d"]).item())
        return alpha / denom * u + h["lr"] * h["wd"] * p


def optax_factored_dims(shape, min_dim=128):
    """optax's _factored_dims: the two largest axes (a stable argsort, as numpy's for so few
    dims), when the smaller of them reaches min_dim_size_to_factor."""
    if len(shape) < 2:
        return None
    order = sorted(range(len(shape)), key=lambda i: shape[i])
    return (order[-2], order[-1]) if shape[order[-2]] >= min_dim else None


class AdafactorOptax(Reference):
    """optax.adafactor (factorized.scale_by_factored_rms as written there: v_row reduces the
    largest axis d0, v_col the second d1, row_col_mean over v_row's d1), RMS clipping, lr,
    parameter scale, decay."""

    def update(self, p, g, s, t):
        h = dict(lr=1e-2, decay=0.8, eps=1e-30, clip=1.0, wd=0.0) | self.hp
        b2 = 1 - t ** -h["decay"]
        sq = g * g + h["eps"]
        dims = optax_factored_dims(tuple(g.shape))
        if dims:
            d1, d0 = dims
            s.setdefault("v_row", torch.zeros([n for i, n in enumerate(g.shape) if i != d0]))
            s.setdefault("v_col", torch.zeros([n for i, n in enumerate(g.shape) if i != d1]))
            s["v_row"] = b2 * s["v_row"] + (1 - b2) * sq.mean(d0)
            s["v_col"] = b2 * s["v_col"] + (1 - b2) * sq.mean(d1)
            reduced_d1 = d1 - 1 if d1 > d0 else d1
            row_factor = (s["v_row"] / s["v_row"].mean(reduced_d1, keepdim=True)).rsqrt()
            u = g * row_factor.unsqueeze(d0) * s["v_col"].rsqrt().unsqueeze(d1)
        else:
            u = adafactor_direction(g, s, b2, sq, False)
        u = u / max(1.0, (rms(u) / h["clip"]).item())
        u = h["lr"] * u * max(1e-3, rms(p).item())
        return u + h["wd"] * p


class Adafactors(unittest.TestCase):
    def run_all(self, ref, spec, variants, shapes=None):
        for kw in ({},) + variants:
            extra = {"shapes": shapes} if shapes else {}
            w = replay(self, lambda ps: ref(ps, **kw), spec, kw, **extra)
            print(f"\n  {spec} {kw} vs {ref.__name__}: worst {w:.1e} of the distance travelled", end="")

    def test_adafactor_is_shazeer_and_stern(self):
        self.run_all(AdafactorPaper, "adafactor", (dict(lr=0.05, decay=0.5, eps1=1e-20, eps2=1e-2, d=0.5, wd=0.1),))

    def test_adafactor_torch(self):
        ref = AdafactorTorch
        if hasattr(torch.optim, "Adafactor"):  # torch >= 2.5 (the device machine): the class itself
            ref = lambda ps, **kw: torch.optim.Adafactor(ps, **{k: v for k, v in kw.items() if k not in ("decay", "eps1", "eps2")})
            ref.__name__ = "torch.optim.Adafactor"
            self.run_all(ref, "adafactor_torch", (dict(lr=0.05, d=0.5, weight_decay=0.1),), shapes=[(7, 5), (16,), (1,)])
            return
        self.run_all(ref, "adafactor_torch", (dict(lr=0.05, decay=0.5, eps2=1e-2, d=0.5, wd=0.1),))

    def test_adafactor_optax(self):
        self.run_all(AdafactorOptax, "adafactor_optax", (dict(lr=0.05, decay=0.5, eps=1e-20, clip=0.5, wd=0.1),),
                     shapes=[(130, 128), (127, 200), (16,), (3, 4, 2), (2, 130, 128), (129, 3, 128), (128, 130, 2, 2)])

    def test_batched_views_of_torch_and_hugging_face(self):
        # the last two dims per matrix: a batch of matrices, and a 4-D one
        shapes = [(3, 7, 5), (2, 2, 4, 6), (7, 5)]
        self.run_all(AdafactorPaper, "adafactor", (dict(lr=0.05, d=0.5, wd=0.1),), shapes=shapes)
        self.run_all(AdafactorTorch, "adafactor_torch", (dict(lr=0.05, d=0.5, wd=0.1),), shapes=shapes)

    def test_first_step_is_bounded_by_the_relative_step(self):
        # the old `adafactor` (the factored moment alone) moved weights by ~31.6 x lr on step 1;
        # Shazeer & Stern's first step is at most min(lr, 1) * max(eps2, RMS(W)) in RMS
        from opal.torch import Optimizer
        torch.manual_seed(0)
        w = torch.randn(32, 16, requires_grad=True)
        w0 = w.detach().clone()
        opt = Optimizer([("w", w)], spec="adafactor")
        w.grad = torch.randn(32, 16)
        opt.step()
        self.assertLessEqual(rms(w.detach() - w0).item(), 1e-2 * rms(w0).item() * (1 + 1e-5))


class OptaxParity(unittest.TestCase):
    def check(self, ref, spec, *variants):
        for kw in ({},) + variants:
            w = replay(self, lambda ps: ref(ps, **kw), spec, kw)
            print(f"\n  {spec} {kw} vs the optax formula: worst {w:.1e} of the distance travelled", end="")

    def test_adabelief(self):
        self.check(AdaBelief, "adabelief", dict(lr=1e-2, b1=0.8, b2=0.99, eps=1e-8, eps_root=1e-12))

    def test_yogi(self):
        self.check(Yogi, "yogi", dict(lr=3e-3, b1=0.8, b2=0.99, eps=1e-4, acc0=0.1))

    def test_lamb(self):
        self.check(Lamb, "lamb", dict(lr=1e-2, b1=0.8, b2=0.99, eps=1e-8, wd=0.1))

    def test_lars(self):
        self.check(Lars, "lars", dict(lr=0.5, wd=0.01, trust=0.01, eps=1e-9, momentum=0.8, nesterov=True))

    def test_novograd(self):
        self.check(NovoGrad, "novograd", dict(lr=1e-2, b1=0.8, b2=0.5, eps=1e-8, wd=0.1))

    def test_ademamix(self):
        self.check(AdEMAMix, "ademamix", dict(lr=1e-2, b1=0.8, b2=0.99, b3=0.999, alpha=8.0, eps=1e-6, wd=0.1))

    def test_adan(self):
        self.check(Adan, "adan", dict(lr=1e-2, b1=0.9, b2=0.8, b3=0.95, eps=1e-6, wd=0.1))

    def test_novograd_second_moment_is_one_scalar_per_tensor(self):
        from opal.torch import Optimizer
        p = torch.zeros(6, 4, requires_grad=True)
        opt = Optimizer([("p", p)], spec="novograd")
        p.grad = torch.full((6, 4), 0.5)
        opt.step()
        v = opt.state[p]["novograd_core.v"]
        self.assertEqual(v.dim(), 0)
        self.assertAlmostEqual(v.item(), 24 * 0.25, places=5)


if __name__ == "__main__":
    unittest.main()


# ---- the research family (stdlib/research/) and optax's Muon, against their references ----


def ns5(x, eps, steps=5, coeffs=(3.4445, -4.7750, 2.0315)):
    a, b, c = coeffs
    t = x.shape[0] > x.shape[1]
    X = x.T if t else x
    X = X / (X.norm() + eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X.T if t else X


class MuonOptax(Reference):
    """optax.contrib.muon: Muon (Nesterov moment with optax's bias correction, fp32 Newton-Schulz,
    width scale sqrt(max(1, fan_out / fan_in))) on exactly-2-D tensors, Nesterov Adam elsewhere.
    Torch's (out, in) layout is optax's kernel transposed; Newton-Schulz commutes with it."""

    def update(self, p, g, s, t):
        h = dict(lr=0.02, beta=0.95, eps=1e-8, wd=0.0, adam_b1=0.9, adam_b2=0.999, adam_wd=0.0) | self.hp
        b = h["beta"] if p.dim() == 2 else h["adam_b1"]
        zeros(s, p, "mu")
        s["mu"] = (1 - b) * g + b * s["mu"]
        mh = b * s["mu"] / (1 - b ** (t + 1)) + (1 - b) * g / (1 - b ** t)
        if p.dim() == 2:
            u = ns5(mh, h["eps"]) * max(1.0, p.shape[0] / p.shape[1]) ** 0.5
            return h["lr"] * (u + h["wd"] * p)
        zeros(s, p, "nu")
        s["nu"] = h["adam_b2"] * s["nu"] + (1 - h["adam_b2"]) * g * g
        u = mh / ((s["nu"] / (1 - h["adam_b2"] ** t)).sqrt() + h["eps"])
        return h["lr"] * (u + h["adam_wd"] * p)


class ScheduleFreeAdamW(Reference):
    """The reference AdamWScheduleFree's train-mode step (the parameter holds y)."""

    def __init__(self, params, **hp):
        super().__init__(params, **hp)
        self.lr_max, self.weight_sum = 0.0, 0.0

    @torch.no_grad()
    def step(self):
        h = dict(lr=0.0025, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, warmup=0, r=0.0, power=2.0) | self.hp
        k = self.t
        self.t += 1
        lr = h["lr"] * ((k + 1) / h["warmup"] if k < h["warmup"] else 1.0)
        self.lr_max = max(lr, self.lr_max)
        weight = (k + 1) ** h["r"] * self.lr_max ** h["power"]
        self.weight_sum += weight
        ckp1 = weight / self.weight_sum if self.weight_sum else 0.0
        for p in self.params:
            s = self.state[p]
            s.setdefault("z", p.detach().clone())
            zeros(s, p, "v")
            g = p.grad
            s["v"].mul_(h["b2"]).addcmul_(g, g, value=1 - h["b2"])
            d = g / ((s["v"] / (1 - h["b2"] ** (k + 1))).sqrt() + h["eps"]) + h["wd"] * p
            p.lerp_(s["z"], ckp1)
            p.add_(d, alpha=lr * (h["b1"] * (1 - ckp1) - 1))
            s["z"].sub_(d, alpha=lr)


class MarsAdamW(Reference):
    """AGI-Arena/MARS's update_fn, mars-adamw, approximate, optimize_1d=False."""

    def update(self, p, g, s, t):
        h = dict(lr=3e-3, b1=0.95, b2=0.99, eps=1e-8, wd=0.0, gamma=0.025, lr_1d_ratio=1.0, b1_1d=0.9, b2_1d=0.95, wd_1d=0.1) | self.hp
        zeros(s, p, "m", "v", "last")
        if p.dim() == 2:
            b1, b2, lr, wd = h["b1"], h["b2"], h["lr"], h["wd"]
            c = (g - s["last"]) * (h["gamma"] * b1 / (1 - b1)) + g
            n = c.norm()
            if n > 1:
                c = c / n
            s["last"] = g.clone()
        else:
            b1, b2, lr, wd = h["b1_1d"], h["b2_1d"], h["lr"] * h["lr_1d_ratio"], h["wd_1d"]
            c = g
        s["m"] = b1 * s["m"] + (1 - b1) * c
        s["v"] = b2 * s["v"] + (1 - b2) * c * c
        denom = (s["v"].sqrt() / (1 - b2 ** t) ** 0.5 + h["eps"]) * (1 - b1 ** t)
        return lr * (p * wd + s["m"] / denom)


class Prodigy:
    """prodigyopt 1.0's Prodigy.step (one param group), transcribed."""

    def __init__(self, params, lr=1.0, b1=0.9, b2=0.999, beta3=-1, eps=1e-8, wd=0.0, decouple=True, d0=1e-6, d_coef=1.0, growth=1e30,
                 bias_correction=False):
        self.params, self.lr, self.b1, self.b2, self.eps, self.wd, self.decouple = params, lr, b1, b2, eps, wd, decouple
        self.beta3 = b2 ** 0.5 if beta3 < 0 else beta3
        self.d0, self.d_coef, self.growth, self.bc = d0, d_coef, growth, bias_correction
        self.d, self.d_max, self.numerator, self.k = d0, d0, 0.0, 0
        self.state = {p: {} for p in params}

    @torch.no_grad()
    def step(self):
        b1, b2, b3, d, d0 = self.b1, self.b2, self.beta3, self.d, self.d0
        bc = ((1 - b2 ** (self.k + 1)) ** 0.5) / (1 - b1 ** (self.k + 1)) if self.bc else 1
        dlr = d * self.lr * bc
        numerator = self.numerator * b3
        denom = 0.0
        for p in self.params:
            g = p.grad if self.decouple else p.grad + self.wd * p
            st = self.state[p]
            if not st:
                st.update(s=torch.zeros_like(p), p0=p.detach().clone(), m=torch.zeros_like(p), v=torch.zeros_like(p))
            numerator += (d / d0) * dlr * torch.dot(g.flatten(), (st["p0"] - p).flatten()).item()
            st["m"].mul_(b1).add_(g, alpha=d * (1 - b1))
            st["v"].mul_(b2).addcmul_(g, g, value=d * d * (1 - b2))
            st["s"].mul_(b3).add_(g, alpha=(d / d0) * dlr)
            denom += st["s"].abs().sum().item()
        if denom == 0:
            return
        d_hat = self.d_coef * numerator / denom
        if d == d0:
            d = max(d, d_hat)
        self.d_max = max(self.d_max, d_hat)
        d = min(self.d_max, d * self.growth)
        self.numerator, self.d = numerator, d
        for p in self.params:
            st = self.state[p]
            if self.wd != 0 and self.decouple:
                p.add_(p, alpha=-self.wd * dlr)
            p.addcdiv_(st["m"], st["v"].sqrt().add_(d * self.eps), value=-dlr)
        self.k += 1


class ResearchParity(unittest.TestCase):
    def run_all(self, ref, spec, variants):
        for kw in ({},) + variants:
            w = replay(self, lambda ps: ref(ps, **kw), spec, kw)
            print(f"\n  {spec} {kw} vs {ref.__name__}: worst {w:.1e} of the distance travelled", end="")

    def test_muon_optax(self):
        self.run_all(MuonOptax, "muon_optax", (dict(lr=0.01, beta=0.9, eps=1e-7, wd=0.1, adam_b1=0.8, adam_b2=0.99, adam_wd=0.05),))

    def test_schedule_free_adamw(self):
        self.run_all(ScheduleFreeAdamW, "schedule_free_adamw", (dict(lr=0.01, b1=0.8, b2=0.99, eps=1e-6, wd=0.1, warmup=5, r=0.5, power=1.0),))

    def test_prodigy(self):
        for kw in ({}, dict(lr=0.5, b1=0.8, b2=0.99, beta3=0.9, eps=1e-6, wd=0.1, d0=1e-5, d_coef=0.5, growth=1.05, bias_correction=True),
                   dict(wd=0.05, decouple=False)):
            w = replay(self, lambda ps: Prodigy(ps, **kw), "prodigy", kw)
            print(f"\n  prodigy {kw} vs prodigyopt 1.0: worst {w:.1e} of the distance travelled", end="")

    def test_prodigy_d_is_one_group_scalar(self):
        # a steady gradient direction: the distance travelled grows faster than the gradients'
        # sum, so d grows from d0 (by orders of magnitude in a few steps)
        from opal.torch import Optimizer
        torch.manual_seed(0)
        a, b = torch.randn(4, 3, requires_grad=True), torch.randn(5, requires_grad=True)
        kw = dict(d0=1e-4)
        opt = Optimizer([("a", a), ("b", b)], spec="prodigy", **kw)
        ref = Prodigy([x.detach().clone().requires_grad_() for x in (a, b)], **kw)
        direction = [torch.randn(x.shape) for x in (a, b)]
        for _ in range(10):
            for x, y, dvec in zip((a, b), ref.params, direction):
                g = dvec + 0.1 * torch.randn(x.shape)
                x.grad, y.grad = g.clone(), g.clone()
            opt.step()
            ref.step()
        da, db = opt.state[a]["prodigy_core.d"].item(), opt.state[b]["prodigy_core.d"].item()
        self.assertEqual(da, db)  # every tensor holds the same copy of the group's d
        self.assertGreater(ref.d, 1e-2)  # it grew from d0 = 1e-4
        self.assertAlmostEqual(da / ref.d, 1.0, places=4)
        for x, y in zip((a, b), ref.params):
            self.assertLess((x.detach() - y.detach()).norm().item(), 1e-4 * y.detach().norm().item())

    def test_mars_adamw(self):
        self.run_all(MarsAdamW, "mars_adamw", (dict(lr=1e-2, b1=0.9, b2=0.95, eps=1e-6, wd=0.1, gamma=0.05, lr_1d_ratio=0.5, b1_1d=0.8, b2_1d=0.9,
                                                     wd_1d=0.05),))
