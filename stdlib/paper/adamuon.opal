# Table 1 "AdaMuon" / Table 2 Newton-Schulz "Variance-Full" (MW adamuon.py, simplified: no
# sign, no RMS alignment; best_params lr 3.12e-4, wd 3.162, b1 0.968, b2 0.99):
# O = NS(m_hat); v <- EMA_b2(O^2); u = O / (sqrt(v_hat) + 1e-8).
optimizer paper_adamuon(lr = 3.12e-4, wd = 3.162, b1 = 0.968, b2 = 0.99, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1, bias_correction = true) -> ns(coeffs = you) -> adapt(b2, 1e-8, of = u) -> decay(wd)
          -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

# Table 2 Newton-Schulz "Variance-Full (b1 = b2)".
optimizer paper_adamuon_b1b1(lr = 3.12e-4, wd = 3.162, b1 = 0.968, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1, bias_correction = true) -> ns(coeffs = you) -> adapt(b1, 1e-8, of = u) -> decay(wd)
          -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

# Table 2 Newton-Schulz "Variance-Factorized" (v_adafactor on O, with the reference's n/m scale).
optimizer paper_adamuon_factored(lr = 3.12e-4, wd = 3.162, b1 = 0.968, b2 = 0.99, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1, bias_correction = true) -> ns(coeffs = you) -> adapt_factored_ref(b2, 1e-8, of = u) -> decay(wd)
          -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}
