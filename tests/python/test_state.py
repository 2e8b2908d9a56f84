"""opal.torch.Optimizer.state: live views of the engine's slots, changed the ways torch.optim's
state is changed. Assigning a slot copies into it; `del opt.state[p]`, `opt.state[p] = {...}` and
`opt.state = {}` start the state over. Before, each of these changed the dict and not the
engine: the next step went on with the old state, and state_dict() disagreed with opt.state.
A group's tensor replaced by another starts fresh, as torch.optim's state is keyed by tensor
(before, the new tensor stepped on with the old one's state)."""
import unittest

import torch

from opal.torch import Optimizer


def stepped(spec="adamw", state=None, steps=2, seed=0):
    torch.manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(4, 6))
    opt = Optimizer([("w", w)], spec, lr=1e-2, **({"state": state} if state else {}))
    for _ in range(steps):
        w.grad = torch.randn(4, 6)
        opt.step()
    return w, opt


class LiveState(unittest.TestCase):
    def test_assigning_a_slot_copies_into_the_engine(self):
        w, opt = stepped()
        opt.state[w]["momentum.m"] = torch.full((4, 6), 0.25)
        self.assertTrue(bool((opt.state_dict()["state"]["w"]["momentum.m"] == 0.25).all()))
        opt.state[w]["adapt.v"] = 1.0  # broadcast, as copy_ does
        self.assertTrue(bool((opt.state[w]["adapt.v"] == 1.0).all()))
        # the next step reads them: m = 0.9 m + 0.1 g, v = 0.999 v + 0.001 g^2, on top of the copies
        g = torch.randn(4, 6)
        w.grad = g.clone()
        opt.step()
        torch.testing.assert_close(opt.state[w]["momentum.m"], 0.9 * 0.25 + 0.1 * g, rtol=1e-6, atol=0)

    def test_a_bf16_slot_takes_values_rounded_to_nearest(self):
        w, opt = stepped(state="bf16")
        value = torch.randn(4, 6)
        opt.state[w]["momentum.m"] = value
        self.assertEqual(opt.state[w]["momentum.m"].dtype, torch.bfloat16)
        self.assertTrue(torch.equal(opt.state[w]["momentum.m"], value.bfloat16()))

    def test_bad_values_are_refused_and_change_nothing(self):
        w, opt = stepped(state="q8")
        before = {k: v.clone() for k, v in opt.state[w].items()}
        with self.assertRaisesRegex(TypeError, "stored as q8: it takes its codes"):
            opt.state[w]["momentum.m"] = torch.zeros(4, 6)
        with self.assertRaisesRegex(ValueError, r"has shape \[4, 6\]; a value of shape \[3, 6\] does not fit"):
            opt.state[w]["momentum.m"] = torch.zeros(3, 6, dtype=torch.uint8)
        with self.assertRaisesRegex(KeyError, "no state slot `exp_avg`; its slots are momentum.m"):
            opt.state[w]["exp_avg"] = torch.zeros(4, 6)
        with self.assertRaisesRegex(TypeError, "cannot be deleted alone"):
            del opt.state[w]["adapt.v"]
        with self.assertRaisesRegex(KeyError, "no state slot `nope`"):  # one bad entry: the others are not applied
            opt.state[w] = {"momentum.m": torch.zeros(4, 6, dtype=torch.uint8), "nope": 1}
        for k, v in before.items():
            self.assertTrue(torch.equal(opt.state[w][k], v), k)
        opt.state[w]["momentum.m"] = torch.full((4, 6), 127, dtype=torch.uint8)  # codes are taken as they are
        self.assertTrue(bool((opt.state[w]["momentum.m"] == 127).all()))

    def test_deleting_a_parameters_state_starts_it_over(self):
        for how in ("del", "empty dict", "optimizer state"):
            with self.subTest(how=how):
                w, opt = stepped()
                if how == "del":
                    del opt.state[w]
                elif how == "empty dict":
                    opt.state[w] = {}
                else:
                    opt.state = {}
                self.assertTrue(all(bool((v == 0).all()) for v in opt.state[w].values()))
                # its next step is a fresh optimizer's first (bias corrections from t = 1)
                fresh_w = torch.nn.Parameter(w.detach().clone())
                fresh = Optimizer([("w", fresh_w)], "adamw", lr=1e-2)
                g = torch.randn(4, 6)
                w.grad, fresh_w.grad = g.clone(), g.clone()
                opt.step()
                fresh.step()
                self.assertTrue(torch.equal(w, fresh_w))
                self.assertEqual(type(opt.state).__name__, "OptimizerState")

    def test_a_dict_for_a_parameter_starts_it_over_then_sets_its_slots(self):
        w, opt = stepped()
        opt.state[w] = {"momentum.m": torch.ones(4, 6)}
        self.assertTrue(bool((opt.state[w]["momentum.m"] == 1).all()))
        self.assertTrue(bool((opt.state[w]["adapt.v"] == 0).all()))
        opt.state = {w: {"adapt.v": 2.0}}
        self.assertTrue(bool((opt.state[w]["momentum.m"] == 0).all()))
        self.assertTrue(bool((opt.state[w]["adapt.v"] == 2).all()))
        self.assertEqual(opt.state_dict()["param_groups"][0]["opal"]["opal.step"], "2")  # (the optimizer's own count stays)

    def test_other_keys_are_kept_as_a_dict_keeps_them(self):
        w, opt = stepped()
        other = torch.zeros(1)
        self.assertEqual(opt.state[other], {})  # torch's defaultdict(dict)
        opt.state[other] = {"note": 1}
        self.assertEqual(opt.state[other], {"note": 1})
        del opt.state[other]
        self.assertNotIn(other, opt.state)
        self.assertIn(w, opt.state)


class ReplacedTensors(unittest.TestCase):
    def fresh_step(self, w, g):
        """A fresh optimizer's first step of a copy of w with gradient g."""
        fresh_w = torch.nn.Parameter(w.detach().clone())
        fresh = Optimizer([("w", fresh_w)], "adamw", lr=1e-2)
        fresh_w.grad = g.clone()
        fresh.step()
        return fresh_w

    def test_a_new_tensor_in_a_group_starts_fresh_and_takes_the_state_key(self):
        torch.manual_seed(1)
        w, b = torch.nn.Parameter(torch.randn(4, 6)), torch.nn.Parameter(torch.randn(6))
        opt = Optimizer([("w", w), ("b", b)], "adamw", lr=1e-2)
        for _ in range(3):
            w.grad, b.grad = torch.randn(4, 6), torch.randn(6)
            opt.step()
        b_state = {k: v.clone() for k, v in opt.state[b].items()}
        new_w = torch.nn.Parameter(torch.randn(4, 6))  # a re-initialized layer, put where w was
        opt.param_groups[0]["params"][0] = new_w
        g = torch.randn(4, 6)
        new_w.grad, b.grad = g.clone(), torch.randn(6)
        expected = self.fresh_step(new_w, g)
        opt.step()
        self.assertTrue(torch.equal(new_w, expected))  # bias corrections from t = 1, zero moments
        self.assertNotIn(w, opt.state)
        self.assertIn(new_w, opt.state)
        torch.testing.assert_close(opt.state[new_w]["momentum.m"], 0.1 * g)
        self.assertFalse(torch.equal(opt.state[b]["momentum.m"], b_state["momentum.m"]))  # b stepped on from its own state
        self.assertFalse(bool((opt.state[b]["adapt.v"] == 0).any()))

    def test_the_same_parameter_with_new_data_keeps_its_state(self):
        w, opt = stepped()
        m = opt.state[w]["momentum.m"].clone()
        with torch.no_grad():
            w.data = torch.randn(4, 6)  # the same Parameter: torch keeps its state too
        g = torch.randn(4, 6)
        w.grad = g.clone()
        opt.step()
        torch.testing.assert_close(opt.state[w]["momentum.m"], 0.9 * m + 0.1 * g, rtol=1e-6, atol=0)

    def test_a_state_dict_loaded_after_the_replacement_is_the_new_tensors(self):
        w, opt = stepped(steps=3)
        saved = opt.state_dict()
        new_w = torch.nn.Parameter(w.detach().clone())
        opt.param_groups[0]["params"][0] = new_w
        opt.load_state_dict(saved)  # torch.optim maps saved state onto the group's tensors as they are now
        torch.testing.assert_close(opt.state[new_w]["momentum.m"], saved["state"]["w"]["momentum.m"])
        g = torch.randn(4, 6)
        new_w.grad = g.clone()
        opt.step()  # steps on from the loaded state, not restarted
        torch.testing.assert_close(opt.state[new_w]["momentum.m"], 0.9 * saved["state"]["w"]["momentum.m"] + 0.1 * g, rtol=1e-6, atol=0)

if __name__ == "__main__":
    unittest.main()
