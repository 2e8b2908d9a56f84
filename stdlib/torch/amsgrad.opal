# AMSGrad (Reddi et al. 2018) as torch.optim.AdamW(amsgrad=True): Adam's v, its running max
# vmax <- max(vmax, v), and the step m_hat / (sqrt(vmax / (1 - b2^t)) + eps), decoupled decay.
component adapt_max(beta = 0.999 in [0, 1), eps = 1e-8 in [0, inf)) {
  state v = zeros
  state vmax = zeros
  v = beta * v + (1 - beta) * g * g
  vmax = max(vmax, v)
  u = u / (sqrt(vmax) / sqrt(1 - beta ^ t) + eps)
}

optimizer amsgrad(lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01) {
  other: momentum(b1, bias_correction = true) -> adapt_max(b2, eps) -> decay(wd) -> scale(lr)
}
