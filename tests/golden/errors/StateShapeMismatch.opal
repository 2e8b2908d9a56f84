# a full tensor assigned to a per-row state
optimizer o(lr = 1e-3) {
  other: rowstat -> scale(lr)
}
component rowstat(beta = 0.9) {
  state r = zeros(rows)
  r = beta * r + g * g
  u = u / sqrt(r)
}
# CHECK:STDERR
# StateShapeMismatch.opal:7:7: error: `r` holds one value per row, but this is a full tensor [StateShapeMismatch]
#  7 |   r = beta * r + g * g
#    |       ^~~~~~~~~~~~~~~~
# 1 error reported
