# `@` checks inner sizes symbolically: rows x cols times rows x rows does not multiply.
component bad_rotate() {
  state L = zeros(rows, rows)
  L = L + g @ transpose(g)
  u = u @ L
}
optimizer o(lr = 1e-3) {
  matrix: bad_rotate -> scale(lr)
  other: scale(lr)
}
# CHECK:STDERR
# MatmulMismatch.opal:5:7: error: cannot multiply a full tensor by a rows x rows matrix [MatmulMismatch]
#  5 |   u = u @ L
#    |       ^~~~~
#    = help: `@` multiplies matrices whose inner sizes agree: rows x cols by cols x cols, rows x rows by rows x cols, and their transposes; the result must be rows x cols or square
# 1 error reported
