component ema(beta = 0.9) {
  state m = zeros
  u = beta * u
}
# CHECK:STDERR
# UnusedState.opal:2:9: warning: state `m` of `ema` is never updated [UnusedState]
#  2 |   state m = zeros
#    |         ^
#    = help: assign to it, or make it a `let`
