# NovoGrad (Ginsburg et al. 2019) as optax.novograd: a per-tensor second moment of the gradient
# norm, v <- b2 v + (1-b2) ||g||^2 (v = ||g||^2 on step 1: a `scalar` state, 4 bytes per tensor);
# m <- b1 m + g / (sqrt(v + eps_root) + eps) + wd w; u = m.
component novograd_core(b1 = 0.9 in [0, 1), b2 = 0.25 in [0, 1), eps = 1e-6 in [0, inf), eps_root = 0.0 in [0, inf), wd = 0.0 in [0, inf)) {
  state v = scalar(sum(g * g))
  state m = zeros
  v = b2 * v + (1 - b2) * sum(g * g)
  m = b1 * m + u / (sqrt(v + eps_root) + eps) + wd * w
  u = m
}

optimizer novograd(lr = 1e-3, b1 = 0.9, b2 = 0.25, eps = 1e-6, wd = 0.0) {
  other: novograd_core(b1, b2, eps, 0, wd) -> scale(lr)
}
