# A parameter's range (`in [0, 1)`) is checked against every constant it takes: an argument, a
# value passed through a delegated optimizer (the stdlib's too), and an optimizer's default
# that reaches it as it is.
component mom(beta = 0.9 in [0, 1)) {
  state m = zeros
  m = beta * m + (1 - beta) * u
  u = m
}
optimizer inner(lr = 1e-3 in [0, inf), b1 = 0.9) {
  other: mom(b1) -> scale(lr)
}
optimizer constant(lr = 1e-3) {
  other: mom(1) -> scale(lr)
}
optimizer default(lr = 1e-3, b1 = 1.5) {
  other: mom(b1) -> scale(lr)
}
optimizer delegated(lr = 1e-3) {
  other: inner(lr, b1 = -0.5)
}
optimizer stdlib_arg(b1 = 0.9) {
  other: adamw(lr = -1, b1 = b1)
}
# CHECK:STDERR
# ArgumentOutOfRange_param.opal:13:14: error: `beta` of `mom` takes values in [0, 1), not 1 [ArgumentOutOfRange]
#  13 |   other: mom(1) -> scale(lr)
#     |              ^
#     = help: its range is declared at ArgumentOutOfRange_param.opal:4:26
# ArgumentOutOfRange_param.opal:15:35: error: the default of `b1` is 1.5, outside [0, 1): it is `beta` of `mom` (ArgumentOutOfRange_param.opal:4:26), which takes values in [0, 1) [ArgumentOutOfRange]
#  15 | optimizer default(lr = 1e-3, b1 = 1.5) {
#     |                                   ^~~
#     = help: make the default a value in [0, 1)
# ArgumentOutOfRange_param.opal:19:25: error: `beta` of `mom` takes values in [0, 1), not -0.5 [ArgumentOutOfRange]
#  19 |   other: inner(lr, b1 = -0.5)
#     |                         ^~~~
#     = help: its range is declared at ArgumentOutOfRange_param.opal:4:26
# ArgumentOutOfRange_param.opal:22:21: error: `lr` of `scale` takes values in [0, inf), not -1 [ArgumentOutOfRange]
#  22 |   other: adamw(lr = -1, b1 = b1)
#     |                     ^~
#     = help: its range is declared at decay.opal:16:27
# 4 errors reported
