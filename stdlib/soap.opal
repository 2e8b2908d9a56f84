# SOAP as its authors' code (nikhilvyas/SOAP): Adam in the eigenbasis of Shampoo's factors,
# the first step only sets the basis up, refreshes by power iteration + QR every `every` steps
# with the variance re-sorted alongside the basis, bias corrections folded into the step, and
# weight decay applied to the updated weight. Defaults are the reference's. A side longer than
# max_precond_dim gets no factor (identity basis), as the reference's `GG[i] = []`; both sides:
# Adam with SOAP's corrections. max_precond_dim decides routes, so it is fixed when the
# optimizer is built. Embeddings, heads (by role) and vectors: AdamW.
optimizer soap(lr = 3e-3, b1 = 0.95, b2 = 0.95, shampoo_beta = 0.95, eps = 1e-8, wd = 0.01, every = 10, max_precond_dim = 10000) {
  where(rank >= 2 && rows <= max_precond_dim && cols <= max_precond_dim):
    skip_first -> momentum(b1) -> rotate(soap_basis(b1, b2, shampoo_beta, eps, every)) -> unrotate
    -> scale(lr) -> decay_after(select(t == 1, 0, lr * wd))
  where(rank >= 2 && cols <= max_precond_dim):
    skip_first -> momentum(b1) -> rotate(soap_basis_right(b1, b2, shampoo_beta, eps, every)) -> unrotate
    -> scale(lr) -> decay_after(select(t == 1, 0, lr * wd))
  where(rank >= 2 && rows <= max_precond_dim):
    skip_first -> momentum(b1) -> rotate(soap_basis_left(b1, b2, shampoo_beta, eps, every)) -> unrotate
    -> scale(lr) -> decay_after(select(t == 1, 0, lr * wd))
  matrix: skip_first -> momentum(b1) -> soap_adam(b1, b2, eps) -> scale(lr) -> decay_after(select(t == 1, 0, lr * wd))
  embedding, head, other: adamw(lr = lr, b1 = b1, b2 = b2, eps = eps, wd = wd)
}
