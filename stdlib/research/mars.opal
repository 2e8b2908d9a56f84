# MARS-AdamW (Yuan et al. 2024; AGI-Arena/MARS, approximate variant): for 2-D tensors the
# variance-reduced gradient c = g + gamma b1 / (1 - b1) (g - g_prev) (g_prev = 0 on step 1),
# scaled to norm 1 where longer, drives AdamW (b1, b2, eps, wd, lr); every other tensor takes
# plain AdamW with b1_1d, b2_1d, wd_1d at lr * lr_1d_ratio (the reference's lr_1d / lr, so a
# scheduler on lr moves both).
component mars_correction(beta = 0.95 in [0, 1), gamma = 0.025) {
  state prev = zeros
  let c = u + gamma * beta / (1 - beta) * (u - prev)
  let n = norm(c)
  prev = u
  u = select(n > 1, c / n, c)
  g = u
}

optimizer mars_adamw(lr = 3e-3, b1 = 0.95, b2 = 0.99, eps = 1e-8, wd = 0.0, gamma = 0.025, lr_1d_ratio = 1.0, b1_1d = 0.9, b2_1d = 0.95, wd_1d = 0.1) {
  where(rank == 2): mars_correction(b1, gamma) -> momentum(b1, bias_correction = true) -> adapt(b2, eps) -> decay(wd) -> scale(lr)
  other:            momentum(b1_1d, bias_correction = true) -> adapt(b2_1d, eps) -> decay(wd_1d) -> scale(lr * lr_1d_ratio)
}
