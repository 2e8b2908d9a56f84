optimizer basis_as_stage(lr = 1e-3) {
  matrix: eigenbasis(0.99, 10) -> scale(lr)
  other: scale(lr)
}

optimizer not_a_basis(lr = 1e-3) {
  matrix: rotate(adapt(0.99)) -> unrotate -> scale(lr)
  other: scale(lr)
}
# CHECK:STDERR
# UnbalancedBasis_stage.opal:2:11: error: `eigenbasis` is a basis: enter it with `rotate(eigenbasis(...))` [UnbalancedBasis]
#  2 |   matrix: eigenbasis(0.99, 10) -> scale(lr)
#    |           ^~~~~~~~~~
#    = help: a basis changes u and g until the matching `unrotate`
# UnbalancedBasis_stage.opal:7:11: error: `adapt` is not a basis: it has no `inverse { ... }` block [UnbalancedBasis]
#  7 |   matrix: rotate(adapt(0.99)) -> unrotate -> scale(lr)
#    |           ^~~~~~~~~~~~~~~~~~~
#    = help: `rotate(...)` takes a basis component such as `eigenbasis(b2, every)`
# 2 errors reported
