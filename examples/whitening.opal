# The seed paper's Table 2: basis x normalization, generated from two axes.
# `opal grid examples/whitening.opal` lists the cells; `opal ablate examples/whitening.opal
# --workload gpt` runs them. A stage named after an axis takes that axis' alternative, so
# `basis` runs `norm` inside it. Where the reference code departs from the plain construction
# (algorithms.md section 5: SOAP zeroes step 1 and takes its variance of rot(g); SPlus scales by
# 2/(m+n); inside Newton-Schulz "sign" is NS itself and variance is of the stream), the cell says so.
grid whitening(lr = 1e-3, wd = 0.0, b1 = 0.9, b2 = 0.99, b3 = 0.1, every = 10, lr_other = 3e-3, warmup = 20, total = 1000) {
  basis = {
    elementwise:              norm,
    eigenbasis(lr = 3e-2):    rotate(eigenbasis(b2, every)) -> norm -> unrotate,
    newton_schulz(lr = 3e-2): ns -> norm,
  }
  norm = {
    sign(lr = 3e-4):      sign,
    lookahead(lr = 3e-4): lookahead(b3) -> sign,
    variance_b1:          scale(1 / (1 - b1 ^ t)) -> adapt(b1),
    factored:             scale(1 / (1 - b1 ^ t)) -> adapt_factored_ref(b2),
    variance:             scale(1 / (1 - b1 ^ t)) -> adapt(b2),
  }
  matrix: momentum(b1) -> basis -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  "*embed*": momentum(b1, bias_correction = true) -> adapt(b2) -> scale(warmup_cosine(t - 1, lr_other, warmup, total))
  vector:    momentum(b1, bias_correction = true) -> adapt(b2) -> scale(warmup_cosine(t - 1, lr_other, warmup, total))

  # SPlus: sign in the eigenbasis, scaled by 2/(m+n); SOAP: step 1 only builds the basis.
  cell(eigenbasis, sign)(lr = 0.1): momentum(b1) -> rotate(eigenbasis(b2, every)) -> sign -> unrotate -> scale(2 / (rows + cols))
      -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  cell(eigenbasis, lookahead)(lr = 0.1): momentum(b1) -> lookahead(b3) -> rotate(eigenbasis(b2, every)) -> sign -> unrotate
      -> scale(2 / (rows + cols)) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  cell(eigenbasis, variance_b1)(lr = 3e-3): skip_first -> momentum(b1, bias_correction = true) -> rotate(eigenbasis(b1, every, zero_first = true))
      -> adapt(b1) -> unrotate -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  # (zero_first would make step 1's factored statistics 0/0: the basis here starts from step 1.)
  cell(eigenbasis, factored)(lr = 3e-3) "not in the reference code": skip_first -> momentum(b1, bias_correction = true)
      -> rotate(eigenbasis(b2, every)) -> adapt_factored_ref(b2) -> unrotate -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  cell(eigenbasis, variance)(lr = 3e-3): skip_first -> momentum(b1, bias_correction = true) -> rotate(eigenbasis(b2, every, zero_first = true))
      -> adapt(b2) -> unrotate -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  # Muon is NS alone; AdaMuon takes its variance of the orthogonalized stream (of = u).
  cell(newton_schulz, sign)(lr = 3e-2): momentum(b1, bias_correction = true) -> ns -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  cell(newton_schulz, lookahead)(lr = 3e-2): momentum(b1) -> lookahead(b3) -> scale(1 / (1 - b1 ^ t)) -> ns -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  cell(newton_schulz, variance_b1)(lr = 1e-3): momentum(b1, bias_correction = true) -> ns -> adapt(b1, of = u) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  cell(newton_schulz, factored)(lr = 1e-3): momentum(b1, bias_correction = true) -> ns -> adapt_factored_ref(b2, of = u) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  cell(newton_schulz, variance)(lr = 1e-3): momentum(b1, bias_correction = true) -> ns -> adapt(b2, of = u) -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))

  baseline(elementwise, variance)
  sweep lr = around(10, per_decade = 2)
  seeds = 2
}
