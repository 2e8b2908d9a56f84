# a rows x rows matrix combines elementwise only with its own kind and scalars
component mix() {
  state L = zeros(rows, rows)
  L = L + g
  u = u
}
optimizer o(lr = 1e-3) {
  matrix: mix -> scale(lr)
  other: scale(lr)
}
# CHECK:STDERR
# ShapeMismatch.opal:4:7: error: `+` combines a rows x rows matrix with a full tensor [ShapeMismatch]
#  4 |   L = L + g
#    |       ^~~~~
#    = help: square matrices combine elementwise only with their own kind and scalars; use `@` to multiply
# 1 error reported
