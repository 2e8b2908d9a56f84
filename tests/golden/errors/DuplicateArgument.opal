optimizer o(lr = 1e-3) {
  other: adapt(0.99, beta = 0.9) -> scale(lr)
}
# CHECK:STDERR
# DuplicateArgument.opal:2:22: error: argument `beta` of `adapt` is given twice [DuplicateArgument]
#  2 |   other: adapt(0.99, beta = 0.9) -> scale(lr)
#    |                      ^~~~
# 1 error reported
