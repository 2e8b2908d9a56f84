# AdEMAMix (Pagliardini et al. 2024) as optax.contrib.ademamix: a fast EMA m1 (bias-corrected),
# a slow EMA m2 (b3, not corrected, so it fills slowly) mixed by alpha, Adam's v:
# u = (m1_hat + alpha m2) / (sqrt(v_hat + eps_root) + eps); decoupled decay; lr.
component adapt_ademamix(b1 = 0.9 in [0, 1), b2 = 0.999 in [0, 1), b3 = 0.9999 in [0, 1), alpha = 5.0, eps = 1e-8 in [0, inf), eps_root = 0.0 in [0, inf)) {
  state m1 = zeros
  state m2 = zeros
  state v = zeros
  m1 = b1 * m1 + (1 - b1) * g
  m2 = b3 * m2 + (1 - b3) * g
  v = b2 * v + (1 - b2) * g * g
  u = (m1 / (1 - b1 ^ t) + alpha * m2) / (sqrt(v / (1 - b2 ^ t) + eps_root) + eps)
}

optimizer ademamix(lr = 1e-3, b1 = 0.9, b2 = 0.999, b3 = 0.9999, alpha = 5.0, eps = 1e-8, wd = 0.0) {
  other: adapt_ademamix(b1, b2, b3, alpha, eps) -> decay(wd) -> scale(lr)
}
