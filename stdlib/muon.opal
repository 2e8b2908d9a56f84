# Muon as Keller Jordan's code (KellerJordan/Muon): m <- lerp(m, g, 1 - b1); Nesterov
# c = lerp(g, m, b1); u = NS5(c) in bf16 with (3.4445, -4.7750, 2.0315) and eps 1e-7, scaled by
# sqrt(max(1, rows/cols)); W <- W(1 - lr*wd) - lr*u. Vectors, embeddings and heads: AdamW.
optimizer muon(lr = 0.02, b1 = 0.95, wd = 0.0) {
  matrix: momentum(b1, nesterov = true) -> ns(coeffs = keller, bf16 = true, eps = 1e-7) -> decay(wd) -> scale(lr)
  other:  adamw(lr = 3e-4, b1 = 0.9, b2 = 0.95, wd = 0.0)
}

# Moonlight's Muon: the same orthogonalized update with the RMS matched to AdamW's,
# u = 0.2 * sqrt(max(rows, cols)) * NS(c), so AdamW's learning rate and weight decay carry over.
optimizer muon_moonlight(lr = 1e-3, b1 = 0.95, wd = 0.1) {
  matrix: momentum(b1, nesterov = true) -> ns(coeffs = keller, bf16 = true, eps = 1e-7, shape_scale = false) -> rms_match(0.2)
          -> decay(wd) -> scale(lr)
  other:  adamw(lr = lr, b1 = 0.9, b2 = 0.95, wd = wd)
}
