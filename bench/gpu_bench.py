#!/usr/bin/env python3
"""Opal against PyTorch on one GPU, in one run: the seed paper's GPT-2 parameter set (162M
parameters: vocab 50257, d 768, 12 layers, untied head). A benchmark, not a test.

    scripts/bench_gpu.sh                  # build, then this script, on a machine with a GPU
    python3 bench/gpu_bench.py --lib build/libopal.so [--only adamw,muon,...]

Opal is driven through its C ABI (libopal.so, ctypes), stepping torch's CUDA tensors in place
on torch's current stream, so any Python with torch runs it. Each line prints Opal's time, the
peer's, the ratio (peer / Opal: above 1 means Opal is faster), and the achieved GB/s or
TFLOP/s. `--device cpu --small` runs the same code on small shapes on the CPU (to check the
script itself where there is no GPU); its numbers mean nothing.
"""
import argparse
import ctypes
import os
import statistics
import sys
import tempfile
import time

import torch

OPAL_F32, OPAL_BF16, OPAL_CPU, OPAL_CUDA = 0, 2, 0, 1


def gpt2_shapes(small=False):
    vocab, d, layers, ctx = (50257, 768, 12, 1024) if not small else (503, 64, 2, 32)
    shapes = [("wte", (vocab, d)), ("wpe", (ctx, d))]
    for l in range(layers):
        p = f"h.{l}."
        shapes += [(p + "ln_1.w", (d,)), (p + "ln_1.b", (d,)), (p + "attn.c_attn.w", (d, 3 * d)), (p + "attn.c_attn.b", (3 * d,)),
                   (p + "attn.c_proj.w", (d, d)), (p + "attn.c_proj.b", (d,)), (p + "ln_2.w", (d,)), (p + "ln_2.b", (d,)),
                   (p + "mlp.c_fc.w", (d, 4 * d)), (p + "mlp.c_fc.b", (4 * d,)), (p + "mlp.c_proj.w", (4 * d, d)), (p + "mlp.c_proj.b", (d,))]
    shapes += [("ln_f.w", (d,)), ("ln_f.b", (d,)), ("lm_head", (vocab, d))]
    return shapes


def role(name):
    """The role opal.torch would give a GPT-2 parameter from its module: SOAP, Muon and Shampoo
    send embeddings and the head to AdamW, as their users' recipes do."""
    if name in ("wte", "wpe"):
        return "embedding"
    if name == "lm_head":
        return "head"
    if ".ln_" in name or name.startswith("ln_"):
        return "norm"
    return "bias" if name.endswith(".b") else ""


def hidden(shapes):
    return [(n, s) for n, s in shapes if n.startswith("h.") and len(s) == 2]


class Opal:
    """One Opal optimizer over torch tensors, through the C ABI."""

    def __init__(self, lib, spec, params, device, state=None):
        self.lib = lib
        self.h = ctypes.c_void_p()
        if state:  # the state's storage, as a route's state(...) says it ("q8", "bf16")
            self._check(lib.opal_create_stored(spec.encode(), None, state.encode(), ctypes.byref(self.h)))
        else:
            self._check(lib.opal_create(spec.encode(), None, ctypes.byref(self.h)))
        dev = OPAL_CUDA if device.type == "cuda" else OPAL_CPU
        for name, p in params:
            shape = (ctypes.c_int64 * max(1, p.dim()))(*p.shape)
            dtype = OPAL_BF16 if p.dtype == torch.bfloat16 else OPAL_F32
            self._check(lib.opal_add_param(self.h, name.encode(), p.dim(), shape, dtype, dev, ctypes.c_void_p(p.data_ptr()),
                                           ctypes.c_void_p(p.grad.data_ptr())))
            self._check(lib.opal_set_param_role(self.h, name.encode(), role(name).encode()))
        self.stream = (lambda: ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)) if dev == OPAL_CUDA else (lambda: None)

    def _check(self, status):
        if status != 0:
            raise RuntimeError(self.lib.opal_last_error().decode())

    def set(self, name, value):
        self._check(self.lib.opal_set_hparam(self.h, name.encode(), ctypes.c_double(value)))

    def build(self, name):
        """Fixes the parameter list: compiles the kernels for the device (or loads them)."""
        out = ctypes.c_char_p()
        self._check(self.lib.opal_route(self.h, name.encode(), ctypes.byref(out)))

    def step(self):
        self._check(self.lib.opal_step(self.h, self.stream()))

    def __del__(self):
        if self.h:
            self.lib.opal_destroy(self.h)


def load_lib(path):
    lib = ctypes.CDLL(path)
    lib.opal_last_error.restype = ctypes.c_char_p
    lib.opal_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.opal_create_stored.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.opal_add_param.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int, ctypes.c_int,
                                   ctypes.c_void_p, ctypes.c_void_p]
    lib.opal_set_param_role.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.opal_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.opal_set_hparam.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_double]
    lib.opal_destroy.argtypes = [ctypes.c_void_p]
    lib.opal_route.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]
    return lib


def make_params(shapes, device, seed=0, dtype=torch.float32):
    g = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    for name, s in shapes:
        p = (torch.randn(s, generator=g) * 0.02).to(device=device, dtype=dtype)
        p.grad = (torch.randn(s, generator=g) * 1e-3).to(device=device, dtype=dtype)
        out.append((name, p))
    return out


def timed(fn, device, iters, warmup=3):
    """Median milliseconds of fn() over iters runs."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            ts.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def copy_bandwidth(device, numel):
    x = torch.empty(numel, device=device)
    y = torch.empty_like(x)
    ms = timed(lambda: y.copy_(x), device, 20)
    return 2 * 4 * numel / (ms * 1e-3) / 1e9


def line(what, opal_ms, peer, peer_ms, extra):
    ratio = f"{peer_ms / opal_ms:6.2f}x" if peer_ms else "   n/a"
    peer_s = f"{peer} {peer_ms:8.3f} ms" if peer_ms else f"{peer}: not timed"
    print(f"{what:<34} opal {opal_ms:8.3f} ms | {peer_s:<36} | ratio {ratio} | {extra}", flush=True)


def ns_flops(shapes, steps=5):
    total = 0
    for _, (r, c) in shapes:
        m, n = min(r, c), max(r, c)
        total += steps * (4 * m * m * n + 2 * m ** 3)
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=os.path.join(os.path.dirname(__file__), "..", "build", "libopal.so"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="small shapes (to check the script on a CPU)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--no-peer", action="store_true", help="time Opal only (the peers' numbers come from another run)")
    ap.add_argument("--only", default="adamw,adamw_bf16,adamw_q8,muon,adafactor,soap,compile")
    args = ap.parse_args()
    device = torch.device(args.device)
    lib = load_lib(args.lib)
    shapes = gpt2_shapes(args.small)
    numel = sum(torch.Size(s).numel() for _, s in shapes)
    only = set(args.only.split(","))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    bw = copy_bandwidth(device, numel)
    print(f"device {name}; torch {torch.__version__}; {len(shapes)} tensors, {numel / 1e6:.1f}M parameters; copy bandwidth {bw:.0f} GB/s")

    def opal_vs_torch(spec, shps, make_peer, state=None, dtype=torch.float32):
        """Opal's step time and the peer's (make_peer(params) -> a torch optimizer; None where this
        torch lacks it), over the same shapes and parameter dtype."""
        params = make_params(shps, device, dtype=dtype)
        o_ms = timed(Opal(lib, spec, params, device, state).step, device, args.iters)
        if make_peer is None or args.no_peer:
            return o_ms, None
        tparams = make_params(shps, device, dtype=dtype)
        return o_ms, timed(make_peer([p for _, p in tparams]).step, device, args.iters)

    fused = device.type == "cuda"
    torch_adamw = lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, **({"fused": True} if fused else {}))
    adamw_ms = None
    if "adamw" in only:
        o_ms, t_ms = opal_vs_torch("adamw", shapes, torch_adamw)
        gbs = 28 * numel / (o_ms * 1e-3) / 1e9  # reads w, g, m, v; writes w, m, v
        line("AdamW step", o_ms, "torch fused AdamW" if fused else "torch AdamW", t_ms, f"{gbs:.0f} GB/s = {100 * gbs / bw:.0f}% of copy")
        adamw_ms = o_ms

    if "adamw_bf16" in only:  # bf16 parameters and gradients (issue 17's byte models)
        # torch keeps a bf16 parameter's state in bf16 (all bf16, 14 B); Opal's "bf16" state is the same model
        o_ms, t_ms = opal_vs_torch("adamw", shapes, torch_adamw, state="bf16", dtype=torch.bfloat16)
        gbs = 14 * numel / (o_ms * 1e-3) / 1e9
        line("AdamW step, all bf16", o_ms, "torch fused AdamW (bf16)" if fused else "torch AdamW (bf16)", t_ms,
             f"{gbs:.0f} GB/s = {100 * gbs / bw:.0f}% of copy")
        o_ms, _ = opal_vs_torch("adamw", shapes, None, dtype=torch.bfloat16)
        gbs = 22 * numel / (o_ms * 1e-3) / 1e9  # w, g bf16; m, v f32
        line("AdamW step, bf16 params, f32 state", o_ms, "no torch peer", None, f"{gbs:.0f} GB/s = {100 * gbs / bw:.0f}% of copy")

    if "adamw_q8" in only:  # 8-bit state: a quarter of the state's bytes, against torch's f32 state
        o_ms, t_ms = opal_vs_torch("adamw", shapes, torch_adamw, state="q8")
        gbs = (16 + 16 / 256) * numel / (o_ms * 1e-3) / 1e9  # w, g read, w written (f32); m, v codes read and written; scales
        line("AdamW step, q8 state", o_ms, "torch fused AdamW (f32 state)" if fused else "torch AdamW (f32 state)", t_ms,
             f"{gbs:.0f} GB/s = {100 * gbs / bw:.0f}% of copy")

    if "muon" in only:
        hs = hidden(shapes)
        peer = getattr(torch.optim, "Muon", None)
        o_ms, t_ms = opal_vs_torch("muon", hs, peer and (lambda ps: peer(ps, lr=0.02)))
        line(f"Muon step ({len(hs)} matrices)", o_ms, "torch.optim.Muon", t_ms, f"{ns_flops(hs) / (o_ms * 1e-3) / 1e12:.1f} TFLOP/s (NS5 flops)")

    if "adafactor" in only:
        peer = getattr(torch.optim, "Adafactor", None)
        o_ms, t_ms = opal_vs_torch("adafactor", shapes, peer and (lambda ps: peer(ps, lr=1e-2)))
        line("Adafactor step", o_ms, "torch.optim.Adafactor", t_ms, f"{16 * numel / (o_ms * 1e-3) / 1e9:.0f} GB/s (w, g read; w written)")

    if "soap" in only:
        hs = hidden(shapes)
        params = make_params(shapes, device)
        opal = Opal(lib, "soap", params, device)
        opal.set("every", 10)
        opal.step()  # step 1 builds the bases
        per_step = []
        for _ in range(20):
            per_step.append(timed(opal.step, device, 1, warmup=0))
        # steps 2..21: a refresh where t % 10 == 1 (every(10) from the first step)
        refresh = [t for i, t in enumerate(per_step) if (i + 2) % 10 == 1]
        plain = [t for i, t in enumerate(per_step) if (i + 2) % 10 != 1]
        amortized = statistics.mean(per_step)
        refresh_ms = statistics.mean(refresh) - statistics.median(plain) if refresh else float("nan")
        factors = [torch.randn(s[0], s[0], device=device) for _, s in hs] + [torch.randn(s[1], s[1], device=device) for _, s in hs]
        factors = [f @ f.T for f in factors]
        eigh_ms = timed(lambda: [torch.linalg.eigh(f) for f in factors], device, 1, warmup=1)
        line("SOAP-10 amortized step", amortized, "opal AdamW", adamw_ms, "ratio = AdamW / SOAP (goal >= 0.5)")
        line(f"SOAP basis refresh ({len(factors)} eighs)", refresh_ms, "loop of torch.linalg.eigh", eigh_ms, "goal >= 10x")
        del opal, params

    if "compile" in only:
        with tempfile.TemporaryDirectory() as d:
            old = os.environ.get("OPAL_CACHE_DIR")
            os.environ["OPAL_CACHE_DIR"] = d
            small = make_params(gpt2_shapes(True)[:4], device)
            for label in ("cold", "cached"):
                t0 = time.perf_counter()
                o = Opal(lib, "soap", small, device)
                o.build(small[0][0])
                print(f"compile soap ({label} cache): {1e3 * (time.perf_counter() - t0):.1f} ms "
                      f"(spec, kernels for the device, buffers; goal: cold <= 300 ms, cached <= 5 ms)", flush=True)
                del o
            if old is None:
                del os.environ["OPAL_CACHE_DIR"]
            else:
                os.environ["OPAL_CACHE_DIR"] = old


if __name__ == "__main__":
    sys.exit(main())
