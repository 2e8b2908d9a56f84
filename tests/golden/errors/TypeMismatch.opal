# a tensor where a scalar belongs, and a full tensor into a per-row state
optimizer o(lr = 1e-3) {
  other: momentum(g) -> scale(lr)
}
component rowstat(beta = 0.9) {
  state r = zeros(rows)
  r = beta * r + g * g
  u = u / sqrt(r)
}
# CHECK:STDERR
# TypeMismatch.opal:7:7: error: `r` holds one value per row, but this is a full tensor [TypeMismatch]
#  7 |   r = beta * r + g * g
#    |       ^~~~~~~~~~~~~~~~
# TypeMismatch.opal:3:19: error: `beta` of `momentum` takes a scalar, but this is a full tensor [TypeMismatch]
#  3 |   other: momentum(g) -> scale(lr)
#    |                   ^
#    = help: pass a hyperparameter or a number
# 2 errors reported
