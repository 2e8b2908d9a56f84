# Adafactor (Shazeer & Stern), the factored second moment only: no momentum, no update
# clipping, no relative step size. Vectors keep a full second moment.
optimizer adafactor(lr = 1e-2, b2 = 0.999, eps = 1e-30, wd = 0.0) {
  matrix: adapt_factored(b2, eps) -> decay(wd) -> scale(lr)
  other:  adapt(b2, eps, bias_correction = false, eps_inside = true) -> decay(wd) -> scale(lr)
}
