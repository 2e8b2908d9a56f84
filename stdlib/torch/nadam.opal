# NAdam (Dozat 2016) as torch.optim.NAdam (torch >= 2.0; 1.13 multiplied mu_product_next by mu
# once too often, a bug fixed in 2.0): g <- g + wd*w;
# mu_t = b1 (1 - 0.5 * 0.96^(t psi)); P <- P * mu_t (a per-tensor scalar, 1 at first);
# m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2; d = sqrt(v / (1 - b2^t)) + eps;
# w <- w - lr ((1 - mu_t) / (1 - P) g / d + mu_{t+1} / (1 - P mu_{t+1}) m / d).
component nadam_core(b1 = 0.9 in [0, 1), b2 = 0.999 in [0, 1), eps = 1e-8 in [0, inf), psi = 4e-3 in [0, inf)) {
  state m = zeros
  state v = zeros
  state mu_product = scalar(1)
  let mu = b1 * (1 - 0.5 * 0.96 ^ (t * psi))
  let mu_next = b1 * (1 - 0.5 * 0.96 ^ ((t + 1) * psi))
  mu_product = mu_product * mu
  m = b1 * m + (1 - b1) * g
  v = b2 * v + (1 - b2) * g * g
  let d = sqrt(v / (1 - b2 ^ t)) + eps
  u = (1 - mu) / (1 - mu_product) * u / d + mu_next / (1 - mu_product * mu_next) * m / d
}

optimizer nadam(lr = 2e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.0, momentum_decay = 4e-3) {
  other: l2(wd) -> nadam_core(b1, b2, eps, momentum_decay) -> scale(lr)
}
