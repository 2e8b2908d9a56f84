# Adafactor as users know it (Shazeer & Stern 2018, Algorithm 4 with their relative step size;
# Hugging Face's Adafactor(relative_step=True, scale_parameter=True)): beta2_t = 1 - t^-decay;
# row and column means of g^2 + eps1 (eps1 inside, so a zero gradient stays finite);
# U = G / sqrt(V) with V = r c^T / mean(r) (vectors: a full V); U clipped to RMS d; the step
# min(lr, 1/sqrt(t)) * max(eps2, RMS(W)); decoupled decay at that step. A >2-D tensor is factored
# per matrix of its last two dims, as Hugging Face's does; RMS(U) and RMS(W) span the tensor.
optimizer adafactor(lr = 1e-2, decay = 0.8, eps1 = 1e-30, eps2 = 1e-3, d = 1.0, wd = 0.0) {
  matrix view(batch): adapt_factored_decay(decay, eps1) -> clip_rms(d) -> decay(wd) -> scale(min(lr, 1 / sqrt(t)) * max(eps2, rms(w)))
  other:  adapt_decay(decay, eps1) -> clip_rms(d) -> decay(wd) -> scale(min(lr, 1 / sqrt(t)) * max(eps2, rms(w)))
}

# torch.optim.Adafactor (torch >= 2.5): no eps inside; V = r c^T / mean(r) clamped at eps1^2
# (eps1: float32's epsilon); beta2_t = 1 - t^-decay as a lerp; the step
# min(lr, 1/sqrt(t)) * max(eps2, RMS(W)) / max(1, RMS(U) / d); decay W(1 - lr wd) with lr itself.
# A >2-D tensor is factored per matrix of its last two dims (torch's row_var [..., m, 1] and
# col_var [..., 1, n] are the slots r [..., m] and c [..., n]); RMS(U) and RMS(W) span the tensor.
optimizer adafactor_torch(lr = 1e-2, decay = 0.8, eps1 = 1.1920928955078125e-07, eps2 = 1e-3, d = 1.0, wd = 0.0) {
  matrix view(batch): adapt_factored_torch(decay, eps1) -> clip_rms(d) -> scale(min(lr, 1 / sqrt(t)) * max(eps2, rms(w))) -> decay(lr * wd)
  other:  adapt_torch(decay, eps1) -> clip_rms(d) -> scale(min(lr, 1 / sqrt(t)) * max(eps2, rms(w))) -> decay(lr * wd)
}

# optax.adafactor (its defaults: decay_rate 0.8, multiply_by_parameter_scale, clipping 1,
# eps 1e-30 inside, no momentum): factored over the two largest axes (per index of the others)
# where both reach min_dim_size_to_factor = 128, else a full V; U clipped to RMS 1 over the
# tensor; times lr, times max(1e-3, RMS(W)); optional decay.
optimizer adafactor_optax(lr = 1e-2, decay = 0.8, eps = 1e-30, clip = 1.0, wd = 0.0) {
  where(rank >= 2 && rows >= 128 && cols >= 128) view(largest):
          adapt_factored_decay(decay, eps) -> clip_rms(clip) -> scale(lr) -> scale(max(1e-3, rms(w))) -> decay(wd)
  other:  adapt_decay(decay, eps) -> clip_rms(clip) -> scale(lr) -> scale(max(1e-3, rms(w))) -> decay(wd)
}

# The factored second moment alone (what `adafactor` meant before: no relative step size, no
# clipping, a constant beta2); the seed paper's Table 1 row.
optimizer adafactor_factored(lr = 1e-2, b2 = 0.999, eps = 1e-30, wd = 0.0) {
  matrix: adapt_factored(b2, eps) -> decay(wd) -> scale(lr)
  other:  adapt(b2, eps, bias_correction = false, eps_inside = true) -> decay(wd) -> scale(lr)
}
