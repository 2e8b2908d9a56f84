# Adam (Kingma & Ba) with torch.optim.Adam's conventions: weight decay is coupled L2.
optimizer adam(lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.0) {
  other: l2(wd) -> momentum(b1, bias_correction = true) -> adapt(b2, eps) -> scale(lr)
}
