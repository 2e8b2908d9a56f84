# Reading a state no `state` line declares.
component bad_adapt(beta = 0.99) {
  v = beta * v + (1 - beta) * g * g
  u = u / (sqrt(v) + 1e-8)
}
optimizer o(lr = 1e-3) {
  other: bad_adapt -> scale(lr)
}
# CHECK:STDERR
# UnknownName_state.opal:3:14: error: unknown name `v` [UnknownName]
#  3 |   v = beta * v + (1 - beta) * g * g
#    |              ^
#    = help: did you mean `g`?
# UnknownName_state.opal:3:3: error: assignment to unknown name `v` [UnknownName]
#  3 |   v = beta * v + (1 - beta) * g * g
#    |   ^
#    = help: did you mean `g`?
# UnknownName_state.opal:4:17: error: unknown name `v` [UnknownName]
#  4 |   u = u / (sqrt(v) + 1e-8)
#    |                 ^
#    = help: did you mean `g`?
# 3 errors reported
