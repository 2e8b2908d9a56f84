# Adadelta (Zeiler 2012) as torch.optim.Adadelta: g <- g + wd*w; s <- rho*s + (1-rho)*g^2;
# d = sqrt(a + eps) / sqrt(s + eps) * g; a <- rho*a + (1-rho)*d^2; w <- w - lr*d.
component adadelta_core(rho = 0.9 in [0, 1], eps = 1e-6 in [0, inf)) {
  state s = zeros
  state a = zeros
  s = rho * s + (1 - rho) * g * g
  let d = sqrt(a + eps) / sqrt(s + eps) * u
  a = rho * a + (1 - rho) * d * d
  u = d
}

optimizer adadelta(lr = 1.0, rho = 0.9, eps = 1e-6, wd = 0.0) {
  other: l2(wd) -> adadelta_core(rho, eps) -> scale(lr)
}
