# Muon as Keller Jordan's code (KellerJordan/Muon): m <- lerp(m, g, 1 - b1); Nesterov
# c = lerp(g, m, b1); u = NS5(c) in bf16 with (3.4445, -4.7750, 2.0315) and eps 1e-7, scaled by
# sqrt(max(1, rows/cols)); W <- W(1 - lr*wd) - lr*u. Vectors, and embeddings and heads by their
# role (opal.torch gives roles from the model's modules): AdamW at
# lr * adam_lr_ratio (3e-4 at the default lr), so a scheduler driving lr moves both sides as
# it moves both param groups of the reference; adam_b1, adam_b2, adam_wd set its other terms.
optimizer muon(lr = 0.02, b1 = 0.95, wd = 0.0, adam_lr_ratio = 0.015, adam_b1 = 0.9, adam_b2 = 0.95, adam_wd = 0.0) {
  matrix: momentum(b1, nesterov = true) -> ns(coeffs = keller, bf16 = true, eps = 1e-7) -> decay(wd) -> scale(lr)
  embedding, head, other: adamw(lr = lr * adam_lr_ratio, b1 = adam_b1, b2 = adam_b2, wd = adam_wd)
}

# Moonlight's Muon: the same orthogonalized update with the RMS matched to AdamW's,
# u = 0.2 * sqrt(max(rows, cols)) * NS(c), so AdamW's learning rate and weight decay carry over.
optimizer muon_moonlight(lr = 1e-3, b1 = 0.95, wd = 0.1, adam_b1 = 0.9, adam_b2 = 0.95) {
  matrix: momentum(b1, nesterov = true) -> ns(coeffs = keller, bf16 = true, eps = 1e-7, shape_scale = false) -> rms_match(0.2)
          -> decay(wd) -> scale(lr)
  embedding, head, other: adamw(lr = lr, b1 = adam_b1, b2 = adam_b2, wd = wd)
}
