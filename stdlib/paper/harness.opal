# The seed paper's training harness (MW train.py), shared by the paper family:
# - lr(k) = warmup_cosine(k = t - 1, peak, 200, 10000): the first update has lr = 0;
# - embeddings, the output head and layer norms go to `paper_other`: Adam b1 0.9, b2 0.99,
#   lr 0.01, weight decay 0.001 except on biases, embeddings and norms. Every paper optimizer
#   exposes them as its hyperparameters other_lr and other_wd.
optimizer paper_other(lr = 0.01, wd = 0.001, b1 = 0.9, b2 = 0.99, warmup = 200, total = 10000) {
  bias, embedding, norm, "*bias*", "*embed*", "*norm*":
    momentum(b1, bias_correction = true) -> adapt(b2, 1e-8) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:
    momentum(b1, bias_correction = true) -> adapt(b2, 1e-8) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
}
