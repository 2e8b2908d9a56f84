optimizer a(lr = 1e-3) {
  matrix: sign -> scale(lr)
  other: b(lr = lr)
}
optimizer b(lr = 1e-3) {
  other: a(lr = lr)
}
# CHECK:STDERR
# Cycle.opal:6:10: error: optimizers delegate in a cycle: a -> b -> a [Cycle]
#  6 |   other: a(lr = lr)
#    |          ^
#    = help: one of them must route the parameters through components
# 1 error reported
