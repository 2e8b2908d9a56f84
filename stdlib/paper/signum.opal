# Table 1 "Signum" / Table 2 elementwise "Sign" (MW signum.py, lookahead 0; best_params lr
# 1.77e-4, wd 3.162, b1 0.9). No bias correction: sign is scale-free.
optimizer paper_signum(lr = 1.77e-4, wd = 3.162, b1 = 0.9, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1) -> sign -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

# Table 2 elementwise "Sign + Lookahead [Lion]": sign((1-b3)*m + b3*g). The paper does not
# record b3; 0.1 is our default, sweep it.
optimizer paper_signum_lookahead(lr = 1.77e-4, wd = 3.162, b1 = 0.9, b3 = 0.1, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1) -> lookahead(b3) -> sign -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}
