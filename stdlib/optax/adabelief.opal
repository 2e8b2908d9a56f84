# AdaBelief (Zhuang et al. 2020) as optax.adabelief: m <- b1 m + (1-b1) g; the belief in the
# prediction, s <- b2 s + (1-b2) (g - m)^2 + eps_root (with the new m, as the paper and current
# optax); u = m_hat / (sqrt(s_hat) + eps), bias-corrected.
component adapt_belief(b1 = 0.9 in [0, 1), b2 = 0.999 in [0, 1), eps = 1e-16 in [0, inf), eps_root = 1e-16 in [0, inf)) {
  state m = zeros
  state s = zeros
  m = b1 * m + (1 - b1) * g
  s = b2 * s + (1 - b2) * (g - m) * (g - m) + eps_root
  u = m / (1 - b1 ^ t) / (sqrt(s / (1 - b2 ^ t)) + eps)
}

optimizer adabelief(lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-16, eps_root = 1e-16) {
  other: adapt_belief(b1, b2, eps, eps_root) -> scale(lr)
}
