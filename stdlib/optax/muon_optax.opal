# optax.contrib.muon: exactly-2-D tensors get Muon, every other tensor Adam (both Nesterov);
# one learning rate for both (optax has no default: 0.02 here, Muon's usual).
# Momentum m <- beta m + (1-beta) g with optax's Nesterov bias correction,
# m_hat = beta m / (1 - beta^(t+1)) + (1-beta) g / (1 - beta^t); Newton-Schulz in fp32 with
# Keller Jordan's triple on m_hat / (||m_hat|| + eps), scaled by sqrt(max(1, fan_out/fan_in));
# decay(wd), lr. The Adam side: the same Nesterov moment with adam_b1, Adam's v with adam_b2.
component momentum_nesterov_bc(beta = 0.9 in [0, 1)) {
  state m = zeros
  m = (1 - beta) * u + beta * m
  u = beta * m / (1 - beta ^ (t + 1)) + (1 - beta) * u / (1 - beta ^ t)
}

optimizer muon_optax(lr = 0.02, beta = 0.95, eps = 1e-8, wd = 0.0, adam_b1 = 0.9, adam_b2 = 0.999, adam_wd = 0.0) {
  where(rank == 2): momentum_nesterov_bc(beta) -> ns(coeffs = keller, eps = eps) -> decay(wd) -> scale(lr)
  other:            momentum_nesterov_bc(adam_b1) -> adapt(adam_b2, eps) -> decay(adam_wd) -> scale(lr)
}
