"""opal.torch.Optimizer on CUDA tensors (CTest `python_gpu`, label gpu: exits 77, skipped, where
torch has no CUDA device; in the `python` suite the device test is skipped there and the
no-device error is checked).

Run: PYTHONPATH=build/python python3 tests/python/test_cuda.py
"""
import copy
import sys
import unittest

import torch

import opal
from opal.torch import Optimizer


class Cuda(unittest.TestCase):
    def test_no_gpu_is_a_clear_device_error(self):
        if torch.cuda.is_available():
            self.skipTest("this machine has a GPU")
        c = opal.compile("adamw")
        from opal import _opal
        with self.assertRaises(opal.DeviceError) as e:
            _opal.Optimizer(c, [("w", [2, 2], 0, "", "f32")], "cuda")
        self.assertIn("cuda:0", str(e.exception))
        with self.assertRaises(opal.OpalError):
            _opal.Optimizer(c, [("w", [2, 2], 0, "", "f32")], "tpu")

    @unittest.skipUnless(torch.cuda.is_available(), "needs a CUDA device (label gpu)")
    def test_cuda_tensors_step_in_place_like_the_cpu(self):
        torch.manual_seed(0)
        cpu = torch.nn.Linear(64, 32)
        gpu = copy.deepcopy(cpu).cuda()
        oc, og = Optimizer(cpu.parameters(), spec="adamw", lr=1e-2), Optimizer(gpu.parameters(), spec="adamw", lr=1e-2)
        for _ in range(30):
            x = torch.randn(16, 64)
            for m, o, xx in ((cpu, oc, x), (gpu, og, x.cuda())):
                o.zero_grad()
                m(xx).square().mean().backward()
                o.step()
        torch.cuda.synchronize()
        for a, b in zip(cpu.parameters(), gpu.parameters()):
            self.assertLess((a - b.cpu()).abs().max().item(), 1e-4 * max(1.0, a.abs().max().item()))
        v = og.state[gpu.weight]["adapt.v"] if "adapt.v" in og.state[gpu.weight] else next(iter(og.state[gpu.weight].values()))
        self.assertEqual(v.device.type, "cuda")

    @unittest.skipUnless(torch.cuda.is_available(), "needs a CUDA device (label gpu)")
    def test_nonfinite_policies_on_cuda_tensors(self):
        torch.manual_seed(0)
        for policy in ("raise", "skip", "zero"):
            model = torch.nn.Linear(16, 8).cuda().to(torch.bfloat16)
            opt = Optimizer(model.parameters(), spec="adamw", nonfinite=policy, lr=1e-2)
            for p in model.parameters():
                p.grad = torch.full_like(p, 0.25)
            opt.step()
            before = [p.detach().clone() for p in model.parameters()]
            model.weight.grad[3, 4] = float("nan")
            if policy == "raise":
                with self.assertRaises(opal.NonFiniteError):
                    opt.step()
            else:
                opt.step()
            torch.cuda.synchronize()
            events = opt.nonfinite_events
            self.assertEqual(len(events), 1, policy)
            if policy == "zero":
                self.assertTrue(bool((model.weight.grad == 0).all()))
                self.assertFalse(torch.equal(model.weight.detach(), before[0]))
                self.assertTrue(bool(torch.isfinite(model.weight).all()))
            else:  # undone: every parameter as it was, to the bit
                for p, b in zip(model.parameters(), before):
                    self.assertTrue(torch.equal(p.detach(), b), policy)

    @unittest.skipUnless(torch.cuda.is_available(), "needs a CUDA device (label gpu)")
    def test_bf16_models_step_as_on_the_cpu(self):
        """A bf16 model stepped in place on CUDA: AdamW (elementwise: to the bit, f32 or bf16
        state), and Muon (cuBLAS's products, bf16 Newton-Schulz) close to the CPU."""
        for spec, state, exact in (("adamw", None, True), ("adamw", "bf16", True), ("muon", None, False)):
            torch.manual_seed(1)
            cpu = torch.nn.Sequential(torch.nn.Linear(48, 64), torch.nn.ReLU(), torch.nn.Linear(64, 16)).to(torch.bfloat16)
            gpu = copy.deepcopy(cpu).cuda()
            kw = {"state": state} if state else {}
            oc, og = Optimizer(cpu, spec=spec, lr=1e-2, **kw), Optimizer(gpu, spec=spec, lr=1e-2, **kw)
            for _ in range(8):
                x = torch.randn(32, 48).to(torch.bfloat16)
                grads = []
                for m, o, xx in ((cpu, oc, x), (gpu, og, x.cuda())):
                    o.zero_grad()
                    m(xx).float().square().mean().backward()
                    grads.append([p.grad.detach().cpu() for p in m.parameters()])
                # the same gradients on both (the forward passes round differently)
                for p, g in zip(gpu.parameters(), grads[0]):
                    p.grad.copy_(g)
                oc.step()
                og.step()
            torch.cuda.synchronize()
            for a, b in zip(cpu.parameters(), gpu.parameters()):
                self.assertEqual(b.dtype, torch.bfloat16)
                self.assertEqual(b.device.type, "cuda")
                if exact:
                    self.assertTrue(torch.equal(a.detach(), b.detach().cpu()), f"{spec} state {state}")
                else:
                    self.assertLess((a.float() - b.float().cpu()).abs().max().item(), 5e-2 * max(1.0, a.float().abs().max().item()), spec)


    @unittest.skipUnless(torch.cuda.is_available(), "needs a CUDA device (label gpu)")
    def test_master_copies_follow_weights_loaded_after_building(self):
        """As on the CPU (test_precision.MasterCopiesFollowTheirParameters): the copies in CUDA
        memory take weights loaded after the optimizer was built; elements left alone keep theirs."""
        torch.manual_seed(2)
        model = torch.nn.Linear(32, 16).to(torch.bfloat16).cuda()
        opt = Optimizer(model, spec="adamw", lr=1e-3, master_weights=True)
        for _ in range(3):
            for p in model.parameters():
                p.grad = (0.1 * torch.randn_like(p.float())).to(p.dtype)
            opt.step()
        kept = opt.state[model.bias]["master"].clone()
        pretrained = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in model.state_dict().items()}
        pretrained["bias"] = model.bias.detach().clone()  # the same values: the copy keeps its bits
        model.load_state_dict(pretrained)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        with torch.no_grad():
            opt.param_groups[0]["lr"] = 0.0
        opt.step()
        torch.cuda.synchronize()
        self.assertTrue(torch.equal(model.weight, pretrained["weight"]))
        self.assertTrue(torch.equal(opt.state[model.weight]["master"], pretrained["weight"].float()))
        self.assertTrue(torch.equal(opt.state[model.bias]["master"], kept))

if __name__ == "__main__":
    if not torch.cuda.is_available():
        print("skipped: torch sees no CUDA device")
        sys.exit(77)
    unittest.main()
