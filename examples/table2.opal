# The seed paper's Table 2 (basis x normalization), written with components only: each cell is
# one route. Hyperparameters are shared names so one sweep covers a row; the reference's
# warmup-cosine schedule and Adam groups for embeddings and heads come from `paper_other`.
# The grid language (issue "Ablations") will generate these from two axes; this file shows that
# every cell is expressible without C++.
#
#                       Sign          Sign+Lookahead   Var-Full b1=b2   Var-Factorized    Var-Full
#   elementwise         t2_e_sign     t2_e_look        t2_e_var11       t2_e_fact         t2_e_var
#   eigenbasis (100)    t2_s_sign     t2_s_look        t2_s_var11       t2_s_fact (*)     t2_s_var
#   Newton-Schulz       t2_n_sign     t2_n_look        t2_n_var11       t2_n_fact         t2_n_var
# (*) not in the reference code: the natural construction, marked as such.

optimizer t2_e_sign(lr = 1.77e-4, wd = 3.162, b1 = 0.9) {
  matrix: momentum(b1) -> sign -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_e_look(lr = 1.77e-4, wd = 3.162, b1 = 0.9, b3 = 0.1) {
  matrix: momentum(b1) -> lookahead(b3) -> sign -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_e_var11(lr = 1e-3, wd = 1.0, b1 = 0.9) {
  matrix: momentum(b1, bias_correction = true) -> adapt(b1) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_e_fact(lr = 1e-3, wd = 1.0, b1 = 0.9, b2 = 0.99) {
  matrix: momentum(b1, bias_correction = true) -> adapt_factored_ref(b2) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_e_var(lr = 1e-3, wd = 1.0, b1 = 0.9, b2 = 0.99) {
  matrix: momentum(b1, bias_correction = true) -> adapt(b2) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}

optimizer t2_s_sign(lr = 0.1, wd = 0.01, b1 = 0.99, b2 = 0.968, every = 100) {
  matrix: momentum(b1) -> rotate(eigenbasis(b2, every)) -> sign -> unrotate -> scale(2 / (rows + cols)) -> decay(wd)
          -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_s_look(lr = 0.1, wd = 0.01, b1 = 0.99, b2 = 0.968, b3 = 0.1, every = 100) {
  matrix: momentum(b1) -> lookahead(b3) -> rotate(eigenbasis(b2, every)) -> sign -> unrotate -> scale(2 / (rows + cols)) -> decay(wd)
          -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_s_var11(lr = 1.75e-3, wd = 0.316, b1 = 0.9, every = 100) {
  matrix: skip_first -> momentum(b1, bias_correction = true) -> rotate(eigenbasis(b1, every, zero_first = true)) -> adapt(b1) -> unrotate
          -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_s_fact(lr = 1.75e-3, wd = 0.316, b1 = 0.9, b2 = 0.99, every = 100) {
  matrix: skip_first -> momentum(b1, bias_correction = true) -> rotate(eigenbasis(b2, every, zero_first = true)) -> adapt_factored_ref(b2)
          -> unrotate -> skip_first -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_s_var(lr = 1.75e-3, wd = 0.316, b1 = 0.9, b2 = 0.99, every = 100) {
  matrix: skip_first -> momentum(b1, bias_correction = true) -> rotate(eigenbasis(b2, every, zero_first = true)) -> adapt(b2) -> unrotate
          -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}

optimizer t2_n_sign(lr = 7.704e-3, wd = 0.1, b1 = 0.9) {
  matrix: momentum(b1, bias_correction = true) -> ns -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_n_look(lr = 7.704e-3, wd = 0.1, b1 = 0.9, b3 = 0.1) {
  matrix: momentum(b1) -> lookahead(b3) -> scale(1 / (1 - b1 ^ t)) -> ns -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_n_var11(lr = 3.12e-4, wd = 3.162, b1 = 0.968) {
  matrix: momentum(b1, bias_correction = true) -> ns -> adapt(b1, of = u) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_n_fact(lr = 3.12e-4, wd = 3.162, b1 = 0.968, b2 = 0.99) {
  matrix: momentum(b1, bias_correction = true) -> ns -> adapt_factored_ref(b2, of = u) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
optimizer t2_n_var(lr = 3.12e-4, wd = 3.162, b1 = 0.968, b2 = 0.99) {
  matrix: momentum(b1, bias_correction = true) -> ns -> adapt(b2, of = u) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, 200, 10000))
  "*embed*", "*head*", "*output*": paper_other
  other: paper_other
}
