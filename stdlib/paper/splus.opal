# Table 1 "SPlus-10" / "SPlus-100" / Table 2 eigenbasis "Sign" (MW splus.py, lookahead 0):
# u = unrot(sign(rot(m))) * 2/(rows + cols); sides from the raw g with b2. best_params: lr 0.1,
# wd 0.01, b1 0.99, b2 0.968 (the paper prints b2 0.99 for SPlus-10).
optimizer paper_splus10(lr = 0.1, wd = 0.01, b1 = 0.99, b2 = 0.968, every = 10, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1) -> rotate(eigenbasis(b2, every)) -> sign -> unrotate -> scale(2 / (rows + cols))
          -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

optimizer paper_splus100(lr = 0.1, wd = 0.01, b1 = 0.99, b2 = 0.968, every = 100, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1) -> rotate(eigenbasis(b2, every)) -> sign -> unrotate -> scale(2 / (rows + cols))
          -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}

# Table 2 eigenbasis "Sign + Lookahead" (freq 100): sign of rot((1-b3)*m + b3*g). b3 is not
# recorded by the paper; 0.1 is our default.
optimizer paper_splus_lookahead(lr = 0.1, wd = 0.01, b1 = 0.99, b2 = 0.968, b3 = 0.1, every = 100, other_lr = 0.01, other_wd = 0.001, warmup = 200, total = 10000) {
  embedding, head, "*embed*", "*head*", "*output*": paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
  matrix: momentum(b1) -> lookahead(b3) -> rotate(eigenbasis(b2, every)) -> sign -> unrotate -> scale(2 / (rows + cols))
          -> decay(wd) -> scale(warmup_cosine(t - 1, lr, warmup, total))
  other:  paper_other(lr = other_lr, wd = other_wd, warmup = warmup, total = total)
}
