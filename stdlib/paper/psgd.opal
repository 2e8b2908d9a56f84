# Table 1 "PSGD" (MW psgd.py, from psgd_jax, Fisher-type Kronecker preconditioner; best_params
# lr 2.64e-4, wd 1e-3, b1 0.968): the bias-corrected momentum is preconditioned by factors
# fitted every step (the reference's annealing schedule returns probability 1), then clipped.
optimizer paper_psgd(lr = 2.64e-4, wd = 1e-3, b1 = 0.968, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1, bias_correction = true) -> psgd_kron -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}
