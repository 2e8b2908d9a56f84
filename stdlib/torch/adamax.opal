# Adamax (Kingma & Ba 2015, sec. 7.1) as torch.optim.Adamax: g <- g + wd*w; m <- b1*m + (1-b1)*g;
# e <- max(b2*e, |g| + eps); w <- w - lr / (1 - b1^t) * m / e.
component adapt_inf(beta = 0.999 in [0, 1), eps = 1e-8 in [0, inf)) {
  state e = zeros
  e = max(beta * e, abs(g) + eps)
  u = u / e
}

optimizer adamax(lr = 2e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.0) {
  other: l2(wd) -> momentum(b1, bias_correction = true) -> adapt_inf(b2, eps) -> scale(lr)
}
