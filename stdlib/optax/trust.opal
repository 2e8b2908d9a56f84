# The layer-wise trust ratio of LARS and LAMB (optax.scale_by_trust_ratio): u <- u * coeff ||w|| /
# (||u|| + eps), and u unchanged where either norm is 0 (a parameter that would never move).
component trust_ratio(coeff = 1.0, eps = 0.0 in [0, inf)) {
  let pn = norm(w)
  let un = norm(u)
  u = u * select(pn == 0 || un == 0, 1, coeff * pn / (un + eps))
}

# LAMB (You et al. 2020) as optax.lamb: Adam's direction plus decoupled decay, scaled per
# tensor by the trust ratio ||w|| / ||u||.
optimizer lamb(lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-6, wd = 0.0) {
  other: momentum(b1, bias_correction = true) -> adapt(b2, eps) -> decay(wd) -> trust_ratio -> scale(lr)
}

# LARS (You et al. 2017) as optax.lars: u = g + wd w scaled by trust * ||w|| / ||u||, times lr,
# then heavy-ball momentum (optax's trace: m <- u + momentum m).
optimizer lars(lr = 0.1, wd = 0.0, trust = 1e-3, eps = 0.0, momentum = 0.9, nesterov = false) {
  other: decay(wd) -> trust_ratio(trust, eps) -> scale(lr) -> heavy_ball(momentum, 0, nesterov)
}
