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
