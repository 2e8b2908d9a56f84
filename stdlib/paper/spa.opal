# SPA, SPlus-then-Adam (MW spa.py): S = unrot(sign(rot(m))); v <- EMA_b2(S^2) in the original
# basis; u = S / (sqrt(v_hat) + 1e-16); step-1 zeroing. Not in best_params (the paper reports a
# tuned 2.955); SOAP-100's values are our defaults.
optimizer paper_spa(lr = 1.75e-3, wd = 0.316, b1 = 0.9, b2 = 0.99, every = 100, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: skip_first -> momentum(b1) -> rotate(eigenbasis(b2, every)) -> sign -> unrotate -> adapt(b2, 1e-16, of = u)
          -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}
