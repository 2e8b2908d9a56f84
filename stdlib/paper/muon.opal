# Table 1 "Muon" / Table 2 Newton-Schulz "Sign" (MW muon.py, lookahead 0; best_params lr
# 7.704e-3, wd 0.1, b1 0.9): u = NS(m / (1 - b1^t)) with the per-step coefficients in fp32 and
# the sqrt(max(1, rows/cols)) scale; no RMS matching.
optimizer paper_muon(lr = 7.704e-3, wd = 0.1, b1 = 0.9, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1, bias_correction = true) -> ns(coeffs = you) -> decay(wd)
          -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

# Table 2 Newton-Schulz "Sign + Lookahead [Muon]": NS(((1-b3)*m + b3*g) / (1 - b1^t)).
# The paper does not record b3; 0.1 is our default, sweep it.
optimizer paper_muon_lookahead(lr = 7.704e-3, wd = 0.1, b1 = 0.9, b3 = 0.1, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1) -> lookahead(b3) -> scale(1 / (1 - b1 ^ t)) -> ns(coeffs = you) -> decay(wd)
          -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}
