# The last stages of most pipelines. The route ends with w <- w - u.

# Decoupled weight decay (AdamW, the reference harness): u <- u + wd*w, before scale(lr).
component decay(wd = 0.0 in [0, inf)) {
  u = u + wd * w
}

# Coupled L2 decay (torch Adam, SGD weight_decay): adds wd*w to the gradient itself, so later
# statistics of g see it too. Put it first.
component l2(wd = 0.0 in [0, inf)) {
  g = g + wd * w
  u = u + wd * w
}

# Learning rate (or any schedule expression of t): u <- lr*u.
component scale(lr = 1e-3 in [0, inf)) {
  u = lr * u
}

# Cautious weight decay (NorMuon's official code): decay only where the update agrees in sign
# with the weight, u <- u + wd * w * [u * w >= 0].
component decay_cautious(wd = 0.0 in [0, inf)) {
  u = u + wd * w * (u * w >= 0)
}

# Weight decay applied to the already-updated weight, as SOAP's authors' code does
# (p <- p - step; p <- p - lr*wd*p): put it after scale(lr) with k = lr * wd.
component decay_after(k = 0.0 in [0, inf)) {
  u = u + k * (w - u)
}
