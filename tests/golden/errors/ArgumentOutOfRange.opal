# the root of inv_root is a whole number from 1 to 64
component precond() {
  state L = zeros(rows, rows)
  L = L + g @ transpose(g)
  u = inv_root(L, 2.5, 1e-8) @ u
}
optimizer o(lr = 1e-3) {
  matrix: precond -> scale(lr)
  other: scale(lr)
}
# CHECK:STDERR
# ArgumentOutOfRange.opal:5:19: error: the root of `inv_root` must be a whole number from 1 to 64 [ArgumentOutOfRange]
#  5 |   u = inv_root(L, 2.5, 1e-8) @ u
#    |                   ^~~
# 1 error reported
