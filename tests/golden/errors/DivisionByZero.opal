# A divisor that folds to the constant 0 would make every parameter Inf or NaN.
optimizer o(lr = 0.01) {
  other: scale(lr / 0)
}
# CHECK:STDERR
# DivisionByZero.opal:3:21: error: division by zero: the divisor is the constant 0 [DivisionByZero]
#  3 |   other: scale(lr / 0)
#    |                     ^
#    = help: divide by a non-zero value; a divisor that may reach zero at run time needs an eps, as in `x / (y + eps)`
# 1 error reported
