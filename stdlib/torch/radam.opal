# RAdam (Liu et al. 2020) as torch.optim.RAdam: g <- g + wd*w; m, v as Adam; rho_inf = 2/(1-b2) - 1,
# rho_t = rho_inf - 2 t b2^t / (1 - b2^t); where rho_t > 5 the Adam step is rectified,
# u = m_hat * sqrt(1 - b2^t) / (sqrt(v) + eps) * r_t with
# r_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t)); otherwise u = m_hat.
component radam_core(b1 = 0.9 in [0, 1), b2 = 0.999 in [0, 1), eps = 1e-8 in [0, inf)) {
  state m = zeros
  state v = zeros
  m = b1 * m + (1 - b1) * g
  v = b2 * v + (1 - b2) * g * g
  let mh = m / (1 - b1 ^ t)
  let rho_inf = 2 / (1 - b2) - 1
  let rho = rho_inf - 2 * t * b2 ^ t / (1 - b2 ^ t)
  let r = sqrt(max(rho - 4, 0) * max(rho - 2, 0) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
  u = select(rho > 5, mh * sqrt(1 - b2 ^ t) / (sqrt(v) + eps) * r, mh)
}

optimizer radam(lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.0) {
  other: l2(wd) -> radam_core(b1, b2, eps) -> scale(lr)
}
