# Newton-Schulz's step count shapes the generated code: it cannot be a runtime hyperparameter.
optimizer o(lr = 0.02, steps = 5) {
  matrix: momentum(0.95) -> ns(steps = steps) -> scale(lr)
  other: scale(lr)
}
# CHECK:STDERR
# NotConstant.opal:3:29: error: the step count of `newton_schulz` must be known at compile time (in `ns`, matrix.opal:12:24) [NotConstant]
#  3 |   matrix: momentum(0.95) -> ns(steps = steps) -> scale(lr)
#    |                             ^~
#    = help: it decides what is compiled (how many kernels, which algorithm), and hyperparameters change at run time without recompiling: pass a number or a component parameter with a numeric default
# 1 error reported
