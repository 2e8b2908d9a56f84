optimizer o(lr = 1e-3) {
  other: adapt(beta = 0.99, epsilon = 1e-8) -> scale(lr)
}
# CHECK:STDERR
# UnknownArgument.opal:2:29: error: `adapt` has no parameter `epsilon` [UnknownArgument]
#  2 |   other: adapt(beta = 0.99, epsilon = 1e-8) -> scale(lr)
#    |                             ^~~~~~~
#    = help: its parameters are: beta, eps, of, bias_correction, zero_init, eps_inside
# 1 error reported
