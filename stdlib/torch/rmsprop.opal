# RMSprop (Hinton's lecture 6e; Graves 2013 for the centered form) as torch.optim.RMSprop:
# g <- g + wd*w; s <- alpha*s + (1-alpha)*g^2; centered: a <- alpha*a + (1-alpha)*g and the
# variance s - a^2; d = sqrt(...) + eps; with momentum: b <- momentum*b + g/d, w <- w - lr*b;
# else w <- w - lr*g/d. `centered` and `momentum > 0` choose the route when the optimizer is
# built, so each parameter holds only the state its form needs, as torch's does (they are then
# fixed; momentum's value may still change while it stays positive).
component rmsprop_core(alpha = 0.99 in [0, inf), eps = 1e-8 in [0, inf)) {
  state s = zeros
  s = alpha * s + (1 - alpha) * g * g
  u = u / (sqrt(s) + eps)
}

component rmsprop_centered(alpha = 0.99 in [0, inf), eps = 1e-8 in [0, inf)) {
  state s = zeros
  state a = zeros
  s = alpha * s + (1 - alpha) * g * g
  a = alpha * a + (1 - alpha) * g
  u = u / (sqrt(s - a * a) + eps)
}

optimizer rmsprop(lr = 1e-2, alpha = 0.99, eps = 1e-8, wd = 0.0, momentum = 0.0, centered = false) {
  where(centered && momentum > 0): l2(wd) -> rmsprop_centered(alpha, eps) -> heavy_ball(momentum) -> scale(lr)
  where(centered):                 l2(wd) -> rmsprop_centered(alpha, eps) -> scale(lr)
  where(momentum > 0):             l2(wd) -> rmsprop_core(alpha, eps) -> heavy_ball(momentum) -> scale(lr)
  other:                           l2(wd) -> rmsprop_core(alpha, eps) -> scale(lr)
}
