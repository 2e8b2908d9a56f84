# Prodigy (Mishchenko & Defazio 2023) as prodigyopt 1.0's Prodigy: Adam whose step size d is
# estimated from the distance travelled. Per step, with the old d and dlr = d lr (bias-corrected
# when asked): the numerator r <- beta3 r + (d/d0) dlr sum_p <g, p0 - w> and, after
# s <- beta3 s + (d/d0) dlr g, the denominator sum_p ||s||_1 are sums over every tensor
# (`global_sum`); d_hat = d_coef r / denominator; d <- max(d, d_hat) while d = d0;
# d_max <- max(d_max, d_hat); d <- min(d_max, d growth). m <- b1 m + d (1-b1) g;
# v <- b2 v + d^2 (1-b2) g^2; w <- w - dlr (m / (sqrt(v) + d_new eps) + wd w) (decoupled; coupled
# adds wd w to g first). A step whose denominator is 0 moves nothing and keeps d.
# d, d_max and r are group scalars: every tensor holds the same copy (`scalar` states).
component prodigy_core(lr = 1.0, b1 = 0.9, b2 = 0.999, beta3 = -1, eps = 1e-8, wd = 0.0, decouple = true, d0 = 1e-6, d_coef = 1.0,
                       growth = inf, bias_correction = false) {
  state p0 = w
  state s = zeros
  state m = zeros
  state v = zeros
  state d = scalar(d0)
  state d_max = scalar(d0)
  state r = scalar(0)
  let gg = select(decouple, g, g + wd * w)
  let b3 = select(beta3 < 0, sqrt(b2), beta3)
  let dlr = d * lr * select(bias_correction, sqrt(1 - b2 ^ t) / (1 - b1 ^ t), 1)
  let numerator = b3 * r + global_sum((d / d0) * dlr * sum(gg * (p0 - w)))
  m = b1 * m + d * (1 - b1) * gg
  v = b2 * v + d * d * (1 - b2) * gg * gg
  s = b3 * s + (d / d0) * dlr * gg
  let denominator = global_sum(sum(abs(s)))
  let skip = denominator == 0
  let d_hat = d_coef * numerator / select(skip, 1, denominator)
  let dm = max(d_max, d_hat)
  # d is stored in float32: "d still equals d0" allows its rounding
  let d_new = min(dm, select(abs(d - d0) <= 1e-6 * d0, max(d, d_hat), d) * growth)
  u = select(skip, 0, dlr * (m / (sqrt(v) + d_new * eps) + select(decouple, wd, 0) * w))
  r = select(skip, r, numerator)
  d_max = select(skip, d_max, dm)
  d = select(skip, d, d_new)
}

optimizer prodigy(lr = 1.0, b1 = 0.9, b2 = 0.999, beta3 = -1, eps = 1e-8, wd = 0.0, decouple = true, d0 = 1e-6, d_coef = 1.0, growth = 1e30,
                  bias_correction = false) {
  other: prodigy_core(lr, b1, b2, beta3, eps, wd, decouple, d0, d_coef, growth, bias_correction)
}
