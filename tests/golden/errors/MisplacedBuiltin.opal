# transpose(x) is an operand of `@`, not a value of its own
component flip() {
  u = transpose(u)
}
optimizer o(lr = 1e-3) {
  matrix: flip -> scale(lr)
  other: scale(lr)
}
# CHECK:STDERR
# MisplacedBuiltin.opal:3:7: error: `transpose(x)` is only allowed as an operand of `@` [MisplacedBuiltin]
#  3 |   u = transpose(u)
#    |       ^~~~~~~~~~~~
#    = help: write `transpose(a) @ b` or `a @ transpose(b)`; a transposed rows x cols matrix has no shape class of its own
# 1 error reported
