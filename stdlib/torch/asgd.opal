# Averaged SGD (Polyak & Juditsky 1992) as torch.optim.ASGD: g <- g + wd*w;
# w <- w (1 - lambd eta_t) - eta_t g with eta_t = lr / (1 + lambd lr (t-1))^alpha;
# the average ax <- ax + mu_t (w_new - ax) with mu_t = 1 / max(1, t - 1 - t0), ax = w_new while
# mu_t = 1. ax is a state slot (`asgd_average.ax`), the averaged weights for evaluation.
component asgd_step(lr = 1e-2, lambd = 1e-4, alpha = 0.75) {
  let eta = lr / (1 + lambd * lr * (t - 1)) ^ alpha
  u = eta * u + lambd * eta * w
}

component asgd_average(t0 = 1e6) {
  state ax = zeros
  let mu = select(t == 1, 1, 1 / max(1, t - 1 - t0))
  ax = select(mu != 1, ax + (w - u - ax) * mu, w - u)
}

optimizer asgd(lr = 1e-2, lambd = 1e-4, alpha = 0.75, t0 = 1e6, wd = 0.0) {
  other: l2(wd) -> asgd_step(lr, lambd, alpha) -> asgd_average(t0)
}
