# Signum: the sign of an EMA momentum, with decoupled weight decay.
optimizer signum(lr = 1e-4, b1 = 0.9, wd = 0.0) {
  other: momentum(b1) -> sign -> decay(wd) -> scale(lr)
}
