# RMSprop (Hinton's lecture 6e; Graves 2013 for the centered form) as torch.optim.RMSprop:
# g <- g + wd*w; s <- alpha*s + (1-alpha)*g^2; centered: a <- alpha*a + (1-alpha)*g and the
# variance s - a^2; d = sqrt(...) + eps; with momentum: b <- momentum*b + g/d, w <- w - lr*b;
# else w <- w - lr*g/d.
component rmsprop_core(alpha = 0.99, eps = 1e-8, momentum = 0.0, centered = false) {
  state s = zeros
  state a = zeros  # (both slots exist whatever the flags: they are runtime hyperparameters)
  state b = zeros
  s = alpha * s + (1 - alpha) * g * g
  a = select(centered, alpha * a + (1 - alpha) * g, a)
  let d = sqrt(select(centered, s - a * a, s)) + eps
  b = select(momentum > 0, momentum * b + u / d, b)
  u = select(momentum > 0, b, u / d)
}

optimizer rmsprop(lr = 1e-2, alpha = 0.99, eps = 1e-8, wd = 0.0, momentum = 0.0, centered = false) {
  other: l2(wd) -> rmsprop_core(alpha, eps, momentum, centered) -> scale(lr)
}
