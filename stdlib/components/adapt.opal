# Adam-style variance adaptation:
#   v <- beta*v + (1-beta)*of^2;  u <- u / (sqrt(v / (1 - beta^t)) + eps)
# `of` names the signal whose second moment is tracked: g (the gradient in the current basis,
# the default: Adam, SOAP) or u (the stream: AdaMuon, SPA). eps_inside puts eps under the root.
component adapt(beta = 0.999 in [0, 1), eps = 1e-8 in [0, inf), of = g, bias_correction = true, zero_init = true, eps_inside = false) {
  state v = select(zero_init, zeros, of * of)
  v = beta * v + (1 - beta) * of * of
  let vh = select(bias_correction, v / (1 - beta ^ t), v)
  u = u / select(eps_inside, sqrt(vh + eps), sqrt(vh) + eps)
}

# Adafactor's factored second moment (Shazeer & Stern, Algorithm 4; optax): row and column sums
# of of^2 + eps (eps1 of the paper, added before factoring, so an all-zero or tiny gradient
# gives finite factors, never 0/0), V = r c^T / sum(r);  u <- u / sqrt(V). Needs a matrix.
# c / sum(r) is formed first: r * c alone underflows float32 for tiny gradients.
component adapt_factored(beta = 0.999 in [0, 1), eps = 1e-30 in [0, inf), of = g, bias_correction = false) {
  state r = zeros(rows)
  state c = zeros(cols)
  r = beta * r + (1 - beta) * row_sum(of * of + eps)
  c = beta * c + (1 - beta) * col_sum(of * of + eps)
  let v = r * (c / sum(r))
  u = u / sqrt(select(bias_correction, v / (1 - beta ^ t), v))
}

# The seed paper's factored variance, exactly as its reference code (MW adam.py, v_adafactor):
# row and column *means* of of^2, V = rows * r c^T / sum(c) in Opal's (out, in) layout, which
# is n/m times true Adafactor (a quirk included in the paper's numbers), bias-corrected like a
# full v, eps after the root.
component adapt_factored_ref(beta = 0.99 in [0, 1), eps = 1e-8 in [0, inf), of = g) {
  state r = zeros(rows)
  state c = zeros(cols)
  r = beta * r + (1 - beta) * row_mean(of * of)
  c = beta * c + (1 - beta) * col_mean(of * of)
  # max(.., FLT_MIN): an all-zero signal (c = 0) gives v = 0, not 0/0; otherwise exact
  let v = rows * r * c / max(sum(c), 1.17549435e-38) / (1 - beta ^ t)
  u = u / (sqrt(v) + eps)
}

# Adafactor's factored second moment with the decaying beta2_t = 1 - t^-decay (Shazeer & Stern;
# 0 on step 1, so V starts at the first g^2): r, c the row and column means of g^2 + eps;
# u <- u / sqrt(r c^T / mean(r)). c / mean(r) is formed first (r * c underflows float32).
component adapt_factored_decay(decay = 0.8, eps = 1e-30 in [0, inf)) {
  state r = zeros(rows)
  state c = zeros(cols)
  let b2 = 1 - t ^ (-decay)
  r = b2 * r + (1 - b2) * row_mean(g * g + eps)
  c = b2 * c + (1 - b2) * col_mean(g * g + eps)
  u = u / sqrt(r * (c / mean(r)))
}

# The same, unfactored (vectors): v <- b2_t v + (1 - b2_t)(g^2 + eps); u <- u / sqrt(v).
component adapt_decay(decay = 0.8, eps = 1e-30 in [0, inf)) {
  state v = zeros
  let b2 = 1 - t ^ (-decay)
  v = b2 * v + (1 - b2) * (g * g + eps)
  u = u / sqrt(v)
}

# torch.optim.Adafactor's variance: lerp updates of the row and column means of g^2 (no eps
# inside); V = r c^T / mean(r) clamped below at eps1^2; u <- u / sqrt(V).
component adapt_factored_torch(decay = 0.8, eps1 = 1.1920928955078125e-07 in [0, inf)) {
  state r = zeros(rows)
  state c = zeros(cols)
  let b2 = 1 - t ^ (-decay)
  r = r + (1 - b2) * (row_mean(g * g) - r)
  c = c + (1 - b2) * (col_mean(g * g) - c)
  u = u / sqrt(max(r * (c / mean(r)), eps1 * eps1))
}

component adapt_torch(decay = 0.8, eps1 = 1.1920928955078125e-07 in [0, inf)) {
  state v = zeros
  let b2 = 1 - t ^ (-decay)
  v = v + (1 - b2) * (g * g - v)
  u = u / sqrt(max(v, eps1 * eps1))
}
