# A range bounds a scalar: a parameter that takes tensors (its default is one) has none.
component of_tensor(of = g in [0, 1)) {
  u = u * of
}
optimizer o(lr = 1e-3) {
  other: of_tensor -> scale(lr)
}
# CHECK:STDERR
# MisplacedRange_tensor.opal:2:28: error: `of` of `of_tensor` takes tensors: a range bounds a scalar [MisplacedRange]
#  2 | component of_tensor(of = g in [0, 1)) {
#    |                            ^~~~~~~~~
#    = help: drop the range, or clamp the values in the body: `min(max(x, 0), 1)`
# 1 error reported
