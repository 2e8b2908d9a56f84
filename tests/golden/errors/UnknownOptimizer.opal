# OPTIMIZER: lion3
optimizer lion2(lr = 1e-3) {
  other: sign -> scale(lr)
}
# CHECK:STDERR
# error: unknown optimizer `lion3` [UnknownOptimizer]
#   = help: did you mean `lion`?
# 1 error reported
