# Lion (Chen et al.): u = sign(b1*m + (1-b1)*g), then m <- b2*m + (1-b2)*g.
# Written as Signum with lookahead: the momentum keeps b2, and mixing l = 1 - b1/b2 of g into
# the updated m gives exactly b1*m_old + (1-b1)*g.
optimizer lion(lr = 1e-4, b1 = 0.9, b2 = 0.99, wd = 0.0) {
  other: momentum(b2) -> lookahead(1 - b1 / b2) -> sign -> decay(wd) -> scale(lr)
}
