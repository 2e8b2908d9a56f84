# Adan (Xie et al. 2022, Algorithm 1) as optax.adan: d = g - g_prev (0 on step 1);
# m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) d; n <- b3 n + (1-b3) (g + (1-b2) d)^2;
# u = (m_hat + (1-b2) v_hat) / (sqrt(n_hat + eps_root) + eps); decoupled decay; lr.
component adan_core(b1 = 0.98 in [0, 1), b2 = 0.92 in [0, 1), b3 = 0.99 in [0, 1), eps = 1e-8 in [0, inf), eps_root = 0.0 in [0, inf)) {
  state m = zeros
  state v = zeros
  state n = zeros
  state prev = zeros
  let d = select(t == 1, 0, g - prev)
  m = b1 * m + (1 - b1) * g
  v = b2 * v + (1 - b2) * d
  n = b3 * n + (1 - b3) * (g + (1 - b2) * d) * (g + (1 - b2) * d)
  prev = g
  u = (m / (1 - b1 ^ t) + (1 - b2) * v / (1 - b2 ^ t)) / (sqrt(n / (1 - b3 ^ t) + eps_root) + eps)
}

optimizer adan(lr = 1e-3, b1 = 0.98, b2 = 0.92, b3 = 0.99, eps = 1e-8, wd = 0.0) {
  other: adan_core(b1, b2, b3, eps) -> decay(wd) -> scale(lr)
}
