# Adagrad (Duchi et al. 2011) as torch.optim.Adagrad: g <- g + wd*w; s <- s + g^2 (s starts at
# initial_accumulator_value, here acc0); w <- w - lr / (1 + (t-1)*lr_decay) * g / (sqrt(s) + eps).
component adagrad_norm(acc0 = 0.0 in [0, inf), eps = 1e-10 in [0, inf)) {
  state s = full(acc0)
  s = s + g * g
  u = u / (sqrt(s) + eps)
}

optimizer adagrad(lr = 1e-2, lr_decay = 0.0, wd = 0.0, acc0 = 0.0, eps = 1e-10) {
  other: l2(wd) -> adagrad_norm(acc0, eps) -> scale(lr / (1 + (t - 1) * lr_decay))
}
