# Table 1 "Shampoo-10" (MW shampoo.py; best_params lr 1.32e-3, wd 1.0, b1 0.9, b2 0.99): see
# the `shampoo_ref` component for the reference's exact (Adam-normalised) construction.
optimizer paper_shampoo10(lr = 1.32e-3, wd = 1.0, b1 = 0.9, b2 = 0.99, every = 10, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: shampoo_ref(b1, b2, every) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

# Table 1 "Shampoo-100": best_params has no entry; Shampoo-10's values are our defaults.
optimizer paper_shampoo100(lr = 1.32e-3, wd = 1.0, b1 = 0.9, b2 = 0.99, every = 100, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: shampoo_ref(b1, b2, every) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}
