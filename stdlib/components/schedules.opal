# Learning-rate schedules: plain functions of the step, evaluated once per step.
# k counts from 0 as optax's schedules do; the reference harness uses k = t - 1.

# Linear warmup from 0 to peak over `warmup` steps, then cosine decay to `end` at `total`
# (optax.warmup_cosine_decay_schedule).
fn warmup_cosine(k, peak, warmup, total, end = 0) =
  select(k < warmup, peak * k / warmup,
         end + (peak - end) * 0.5 * (1 + cos(pi * min(k - warmup, total - warmup) / (total - warmup))))

# Linear warmup, then constant.
fn warmup_constant(k, peak, warmup) = select(k < warmup, peak * k / warmup, peak)
