# Rprop (Riedmiller & Braun 1993; iRprop- as torch.optim.Rprop): per element, s = sign(g * prev);
# the step size grows by eta_plus where s > 0, shrinks by eta_minus where s < 0, clamped to
# [step_min, step_max]; where it shrank the gradient is forgotten (g <- 0, so the next step
# does not shrink again); w <- w - sign(g) * step; prev <- g. Step sizes start at lr.
component rprop_core(lr = 1e-2, eta_minus = 0.5 in (0, 1), eta_plus = 1.2 in (1, inf), step_min = 1e-6 in [0, inf), step_max = 50 in [0, inf)) {
  state prev = zeros
  state step = full(lr)
  let s = sign(g * prev)
  let f = select(s > 0, eta_plus, select(s < 0, eta_minus, 1))
  step = min(max(step * f, step_min), step_max)
  let gz = select(f == eta_minus, 0, g)
  prev = gz
  u = sign(gz) * step
}

optimizer rprop(lr = 1e-2, eta_minus = 0.5, eta_plus = 1.2, step_min = 1e-6, step_max = 50) {
  other: rprop_core(lr, eta_minus, eta_plus, step_min, step_max)
}
