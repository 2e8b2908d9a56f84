#!/usr/bin/env python3
"""The first step of SOAP on rank-deficient Kronecker factors, against torch.linalg.eigh of the
same factors (issue 14, item 20). A benchmark, not a test.

    PYTHONPATH=build/python OPAL_STDLIB=$PWD/stdlib python3 bench/soap_first_step.py [--shapes 1024x256,2048x256,1024x2048]

A gradient of shape [m, n] gives SOAP factors L = g g^T (m x m, rank min(m, n)) and
R = g^T g (n x n). The first step refreshes the eigenbasis of both: a decomposition in float64,
then the canonical basis (the numerical null space made a function of the matrix alone). The
peer is torch.linalg.eigh (LAPACK syevd) of the same two factors in float64, with torch's
threads. Each line prints Opal's first step, the peer's time, and peer / Opal (above 1: Opal is
faster). Before the fix, Opal's first step on [2048, 256] took 122 s.
"""
import argparse
import time

import torch

from opal.torch import Optimizer


def first_step(m, n, seed=0):
    torch.manual_seed(seed)
    w = torch.randn(m, n, requires_grad=True)
    g = torch.randn(m, n)
    opt = Optimizer([("w", w)], spec="soap")
    w.grad = g.clone()
    t0 = time.perf_counter()
    opt.step()
    return time.perf_counter() - t0, g


def peer(g):
    g = g.double()
    t0 = time.perf_counter()
    torch.linalg.eigh(g @ g.T)
    torch.linalg.eigh(g.T @ g)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="1024x256,2048x256,1024x2048")
    a = ap.parse_args()
    first_step(64, 32)  # compile (or load) the kernels outside the timing
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for shape in a.shapes.split(","):
        m, n = map(int, shape.split("x"))
        opal_s, g = first_step(m, n)
        peer_s = peer(g)
        print(f"soap first step [{m}, {n}]: opal {opal_s:.2f} s, torch.linalg.eigh of L and R (float64) {peer_s:.2f} s, "
              f"ratio {peer_s / opal_s:.2f}")


if __name__ == "__main__":
    main()
