component refresh(beta = 0.9) {
  state s = zeros
  every(2.5) {
    s = beta * s + (1 - beta) * g * g
  }
  u = u / (sqrt(s) + 1e-8)
}
optimizer o(lr = 1e-3) {
  other: refresh -> scale(lr)
}
# CHECK:STDERR
# ArgumentOutOfRange_every.opal:3:9: error: `every` takes a whole number of steps, 1 or more, not 2.5 [ArgumentOutOfRange]
#  3 |   every(2.5) {
#    |         ^~~
#    = help: every(1) refreshes on every step
# 1 error reported
