# NorMuon as its official code: m <- lerp(m, g, 1 - b1), Nesterov c = lerp(g, m, b1);
# O = NS5(c) in bf16 (Keller's triple, eps 1e-7); a row-wise second moment
# v <- lerp(v, row_mean(O^2), 1 - b2) normalizes each output row, the Frobenius norm of O is
# kept; u = O_hat * sqrt(max(1, rows/cols)); cautious weight decay (only where u*W >= 0).
# Embeddings, heads (by role) and vectors: AdamW at lr * adam_lr_ratio (3e-4 at the default lr; a scheduler on lr moves both).
optimizer normuon(lr = 0.02, b1 = 0.95, b2 = 0.95, eps = 1e-10, wd = 0.0, adam_lr_ratio = 0.015, adam_b1 = 0.9, adam_b2 = 0.95, adam_wd = 0.0) {
  matrix: momentum(b1, nesterov = true) -> ns(coeffs = keller, bf16 = true, eps = 1e-7, shape_scale = false)
          -> adapt_rows(b2, eps) -> scale(sqrt(max(1, rows / cols))) -> decay_cautious(wd) -> scale(lr)
  embedding, head, other: adamw(lr = lr * adam_lr_ratio, b1 = adam_b1, b2 = adam_b2, wd = adam_wd)
}
