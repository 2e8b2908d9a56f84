grid g(lr = 1e-3) {
  basis = { plain: norm, ortho: ns -> norm }
  norm = { sign: sign, variance: adapt(0.99) }
  matrix: momentum(0.9) -> basis -> scale(lr)
  cell(ortho, sing): momentum(0.9) -> ns -> scale(lr)
}
# CHECK:STDERR
# BadGrid.opal:5:15: error: axis `norm` has no alternative `sing` [BadGrid]
#  5 |   cell(ortho, sing): momentum(0.9) -> ns -> scale(lr)
#    |               ^~~~
#    = help: did you mean `sign`?
# 1 error reported
