# Table 1 "SOAP-10" / "SOAP-100" / Table 2 eigenbasis "Variance-Full" (MW soap.py): momentum
# stored unrotated, v of the rotated raw gradient kept across refreshes, step-1 zeroing of u, m
# and v (the sides keep g1), bias corrections with t. best_params: N = 10: lr 3.11e-3, wd 0.316,
# b1 0.968, b2 0.99; N = 100: lr 1.75e-3, wd 0.316, b1 0.9, b2 0.99.
optimizer paper_soap10_seed(lr = 3.11e-3, wd = 0.316, b1 = 0.968, b2false99, every = 10, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: skip_first -> momentum(b1, bias_correction = true) -> rotate(eigenbasis(b2, every, zero_first = true))
          -> adapt(b2, 1e-8) -> unrotate -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

optimizer paper_soap100_seed(lr = 1.75e-3, wd = 0.316, b1 = 0.9, b2 = 0.99, every = 100, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: skip_first -> momentum(b1, bias_correction = true) -> rotate(eigenbasis(b2, every, zero_first = true))
          -> adapt(b2, 1e-8) -> unrotate -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

# Table 2 eigenbasis "Variance-Full (b1 = b2)": b2 := b1, which in MW also changes the sides' EMA.
optimizer paper_soap_b1b1_seed(lr = 1.75e-3, wd = 0.316, b1 = 0.9, every = 100, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: skip_first -> momentum(b1, bias_correction = true) -> rotate(eigenbasis(b1, every, zero_first = true))
          -> adapt(b1, 1e-8) -> unrotate -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

# Table 2 eigenbasis "Variance-Factorized": NOT IN THE REFERENCE CODE (make_soap has no factored
# option). Our natural construction: the reference's factored variance (its n/m scale included)
# of the rotated raw gradient, in the rotated basis, with SOAP's step-1 zeroing (the second
# skip_first replaces the 0/0 of an all-zero factored variance on step 1 by the zero update).
optimizer paper_soap_factored_seed(lr = 1.75e-3, wd = 0.316, b1 = 0.9, b2 = 0.99, every = 100, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: skip_first -> momentum(b1, bias_correction = true) -> rotate(eigenbasis(b2, every, zero_first = true))
          -> adapt_factored_ref(b2, 1e-8) -> unrotate -> skip_first -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}
