# AdamW after torch.nn.utils.clip_grad_norm_(params, max_norm), done inside the step: the
# global gradient norm over every parameter, then torch.optim.AdamW on the clipped gradients.
optimizer adamw_clip(lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01, max_norm = 1.0) {
  other: clip_global_norm(max_norm) -> momentum(b1, bias_correction = true) -> adapt(b2, eps) -> decay(wd) -> scale(lr)
}
