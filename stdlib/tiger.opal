# Tiger (Su): Lion with one beta, i.e. the sign of an EMA momentum (Signum with Tiger's defaults).
optimizer tiger(lr = 1e-4, b1 = 0.945, wd = 0.01) {
  other: momentum(b1) -> sign -> decay(wd) -> scale(lr)
}
