# Schedule-Free AdamW (Defazio et al. 2024) as the reference AdamWScheduleFree in train mode:
# the parameter holds y, the gradient point; z is a state, and the evaluation sequence is
# x = (y - (1 - b1) z) / b1 (the host computes it from the parameter and `z`).
# k = t - 1; lr_t = lr * min(1, t / warmup); lr_max <- max(lr_max, lr_t) and the weight sum
# W <- W + t^r lr_max^power are per-tensor `scalar` states (a late-joining tensor keeps its own);
# c = weight / W; v <- b2 v + (1-b2) g^2; d = g / (sqrt(v / (1 - b2^t)) + eps) + wd y;
# y <- lerp(y, z, c) + lr_t (b1 (1 - c) - 1) d; z <- z - lr_t d.
component schedule_free_adamw_core(lr = 0.0025, b1 = 0.9 in [0, 1), b2 = 0.999 in [0, 1), eps = 1e-8 in [0, inf), wd = 0.0 in [0, inf), warmup = 0, r = 0.0, power = 2.0) {
  state z = w
  state v = zeros
  state lr_max = scalar(0)
  state weight_sum = scalar(0)
  let lrt = lr * select(t - 1 < warmup, t / max(warmup, 1), 1)
  lr_max = max(lr_max, lrt)
  let weight = t ^ r * lr_max ^ power
  weight_sum = weight_sum + weight
  let c = select(weight_sum == 0, 0, weight / weight_sum)
  v = b2 * v + (1 - b2) * g * g
  let d = g / (sqrt(v / (1 - b2 ^ t)) + eps) + wd * w
  let y = w + c * (z - w) + lrt * (b1 * (1 - c) - 1) * d
  z = z - lrt * d
  u = w - y
}

optimizer schedule_free_adamw(lr = 0.0025, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.0, warmup = 0, r = 0.0, power = 2.0) {
  other: schedule_free_adamw_core(lr, b1, b2, eps, wd, warmup, r, power)
}
