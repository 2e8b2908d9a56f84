# Shampoo (the seed paper's eq. 4): momentum preconditioned on both sides by the inverse 4th
# roots of the gradient's Kronecker factors, W <- W - lr*(L^(-1/4) M R^(-1/4) + wd*W).
# Embeddings, heads (by role) and vectors: AdamW.
optimizer shampoo(lr = 1e-3, b1 = 0.9, b2 = 0.99, eps = 1e-12, wd = 0.0, every = 10) {
  matrix: momentum(b1) -> shampoo_precond(b2, eps, every) -> decay(wd) -> scale(lr)
  embedding, head, other: adamw(lr = lr, b1 = b1, b2 = b2, wd = wd)
}
