# Exponential moving average of the stream (the reference code's momentum):
#   m <- beta*m + (1-beta)*u;  u <- m, or m / (1 - beta^t) with bias_correction.
# nesterov mixes in the incoming stream as Keller Jordan's Muon does: u <- beta*m + (1-beta)*u_in.
# zero_init = false starts m at the first u instead of at zero (seed 002's "no ZI").
component momentum(beta = 0.9 in [0, 1), bias_correction = false, nesterov = false, zero_init = true) {
  let x = u
  state m = select(zero_init, zeros, u)
  m = beta * m + (1 - beta) * x
  let mh = select(bias_correction, m / (1 - beta ^ t), m)
  u = select(nesterov, beta * mh + (1 - beta) * x, mh)
}

# Heavy-ball momentum as in torch.optim.SGD: m <- beta*m + (1-dampening)*u (m = u on step 1);
# u <- u + beta*m with nesterov, else m.
component heavy_ball(beta = 0.9 in [0, inf), dampening = 0, nesterov = false) {
  state m = zeros
  m = beta * m + select(t == 1, 1, 1 - dampening) * u
  u = select(nesterov, u + beta * m, m)
}
