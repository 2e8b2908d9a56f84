# a tensor where a scalar belongs: a component parameter
optimizer o(lr = 1e-3) {
  other: momentum(g) -> scale(lr)
}
# CHECK:STDERR
# ScalarExpected.opal:3:19: error: `beta` of `momentum` takes a scalar, but this is a full tensor [ScalarExpected]
#  3 |   other: momentum(g) -> scale(lr)
#    |                   ^
#    = help: pass a hyperparameter or a number
# 1 error reported
