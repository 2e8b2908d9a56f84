# Elementwise normalizations and mixes of the update stream.

# u <- sign(u), with sign(0) = 0 (jnp.sign, torch.sign).
component sign() {
  u = sign(u)
}

# Lookahead (Lion, Nesterov): u <- (1-l)*u + l*g. Momentum state keeps its own value.
component lookahead(l = 0.0 in [0, 1]) {
  u = (1 - l) * u + l * g
}

# Cautious mask (Liang et al.): keep only the coordinates where the update agrees in sign
# with the gradient, rescaled by numel / (kept + 1).
component cautious() {
  let mask = u * g > 0
  u = u * mask * (numel / (sum(mask) + 1))
}

# Makes the first step a no-op for the stages after it: u = 0 on step 1, so momentum absorbs
# nothing. The seed paper's SOAP and SPA zero their state after step 1 this way (their bases
# still see g).
component skip_first() {
  u = select(t == 1, 0, u)
}

# Update clipping (Adafactor's d): u <- u / max(1, RMS(u) / d).
component clip_rms(d = 1.0 in (0, inf)) {
  u = u / max(1, rms(u) / d)
}

# torch.nn.utils.clip_grad_norm_ inside the step: the norm of every gradient of the step
# together (`global_sum` over all tensors and routes using this stage), and g, u scaled by
# min(1, max_norm / (norm + 1e-6)), so later statistics see the clipped gradient. A step with a
# global sum runs in two phases (the shares, then the rest): one extra pass over g.
component clip_global_norm(max_norm = 1.0 in [0, inf)) {
  let c = min(1, max_norm / (sqrt(global_sum(sum(g * g))) + 1e-6))
  g = g * c
  u = u * c
}
