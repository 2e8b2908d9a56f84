# Cautious AdamW (Liang et al.): AdamW's direction masked where it disagrees with the gradient.
optimizer cautious_adamw(lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01) {
  other: momentum(b1, bias_correction = true) -> adapt(b2, eps) -> cautious -> decay(wd) -> scale(lr)
}
