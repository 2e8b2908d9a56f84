#!/usr/bin/env python3
"""Where an Opal step's GPU time goes, kernel by kernel (torch.profiler: CUPTI sees every
kernel, copy and synchronization of the process, Opal's included). A diagnostic, not a
benchmark: it prints the top entries by device time and the host calls that wait on the device
(a host round trip inside a step shows as cudaMemcpy or a synchronize).

    python3 bench/gpu_profile.py --lib build/libopal.so --spec soap [--steps 10] [--every 10]
"""
import argparse
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_bench  # noqa: E402  (the same parameter set and C ABI driver)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--spec", default="soap")
    ap.add_argument("--state", default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--every", type=float, default=None, help="the spec's `every` hyperparameter (SOAP's refresh period)")
    ap.add_argument("--rows", type=int, default=30)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="small shapes (to check the script on a CPU)")
    args = ap.parse_args()
    device = torch.device(args.device)
    lib = gpu_bench.load_lib(args.lib)
    params = gpu_bench.make_params(gpu_bench.gpt2_shapes(args.small), device)
    opal = gpu_bench.Opal(lib, args.spec, params, device, args.state)
    if args.every is not None:
        opal.set("every", args.every)
    opal.step()  # the first step (bases, compiles) stays out
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        for _ in range(args.steps):
            opal.step()
        sync()
    ka = prof.key_averages()
    print(f"{args.spec}: {args.steps} steps after the first")
    try:
        table = ka.table(sort_by="self_device_time_total", row_limit=args.rows)
    except (AttributeError, KeyError):  # an older torch
        table = ka.table(sort_by="self_cuda_time_total", row_limit=args.rows)
    print(table)
    waits = [e for e in ka if any(w in e.key for w in ("Memcpy", "memcpy", "Synchronize", "synchronize", "HostAlloc", "Malloc", "Free"))]
    print("host calls that allocate, copy or wait:")
    for e in waits:
        print(f"  {e.key:<48} count {e.count:6d}  cpu total {e.cpu_time_total / 1e3:9.3f} ms")


if __name__ == "__main__":
    sys.exit(main())
