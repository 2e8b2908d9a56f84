component ema(beta = 0.9) {
  state m = zeros
  m = bta * m + (1 - beta) * u
  u = m
}
# CHECK:STDERR
# UnknownName.opal:3:7: error: unknown name `bta` [UnknownName]
#  3 |   m = bta * m + (1 - beta) * u
#    |       ^~~
#    = help: did you mean `beta`?
# 1 error reported
