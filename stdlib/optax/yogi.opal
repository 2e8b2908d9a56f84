# Yogi (Zaheer et al. 2018) as optax.yogi: both moments start at acc0 (1e-6, `full(acc0)`);
# m <- b1 m + (1-b1) g; v <- v - (1-b2) sign(v - g^2) g^2 (additive, not multiplicative);
# u = m_hat / (sqrt(v_hat + eps_root) + eps).
component adapt_yogi(b1 = 0.9 in [0, 1), b2 = 0.999 in [0, 1), eps = 1e-3 in [0, inf), eps_root = 0.0 in [0, inf), acc0 = 1e-6 in [0, inf)) {
  state m = full(acc0)
  state v = full(acc0)
  m = b1 * m + (1 - b1) * g
  v = v - (1 - b2) * sign(v - g * g) * g * g
  u = m / (1 - b1 ^ t) / (sqrt(v / (1 - b2 ^ t) + eps_root) + eps)
}

optimizer yogi(lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-3, acc0 = 1e-6) {
  other: adapt_yogi(b1, b2, eps, 0, acc0) -> scale(lr)
}
