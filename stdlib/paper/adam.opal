# Table 1 "Adam" / Table 2 elementwise "Variance-Full" (MW adam.py; best_params lr 1e-3, wd 1.0,
# b1 0.9, b2 0.99; the paper prints b1 0.95).
optimizer paper_adam(lr = 1e-3, wd = 1.0, b1 = 0.9, b2 = 0.99, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1, bias_correction = true) -> adapt(b2, 1e-8) -> decay(wd)
          -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

# Table 2 elementwise "Variance-Full (b1 = b2)": Adam with b2 := b1.
optimizer paper_adam_b1b1(lr = 1e-3, wd = 1.0, b1 = 0.9, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1, bias_correction = true) -> adapt(b1, 1e-8) -> decay(wd)
          -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

# Table 2 elementwise "Variance-Factorized [Adafactor]": Adam with the reference code's
# factored v (v_adafactor), including its n/m scale.
optimizer paper_adam_factored(lr = 1e-3, wd = 1.0, b1 = 0.9, b2 = 0.99, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1, bias_correction = true) -> adapt_factored_ref(b2, 1e-8) -> decay(wd)
          -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}
