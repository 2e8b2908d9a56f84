# AdamW (Loshchilov & Hutter) as torch.optim.AdamW: w <- w - lr*(m_hat / (sqrt(v_hat) + eps) + wd*w).
optimizer adamw(lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01) {
  other: momentum(b1, bias_correction = true) -> adapt(b2, eps) -> decay(wd) -> scale(lr)
}
