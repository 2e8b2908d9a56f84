optimizer no_way_back(lr = 1e-3) {
  matrix: momentum(0.9) -> rotate(eigenbasis(0.99, 10)) -> adapt(0.99) -> scale(lr)
  other: scale(lr)
}

optimizer nothing_to_undo(lr = 1e-3) {
  matrix: momentum(0.9) -> adapt(0.99) -> unrotate -> scale(lr)
  other: scale(lr)
}
# CHECK:STDERR
# UnbalancedBasis.opal:2:28: error: `rotate(eigenbasis)` is never undone [UnbalancedBasis]
#  2 |   matrix: momentum(0.9) -> rotate(eigenbasis(0.99, 10)) -> adapt(0.99) -> scale(lr)
#    |                            ^~~~~~~~~~~~~~~~~~~~~~~~~~~~
#    = help: add `-> unrotate` after the stages that run in this basis: the update must return to the parameter's basis
# UnbalancedBasis.opal:7:43: error: `unrotate` without a matching `rotate` [UnbalancedBasis]
#  7 |   matrix: momentum(0.9) -> adapt(0.99) -> unrotate -> scale(lr)
#    |                                           ^~~~~~~~
#    = help: enter a basis first: `rotate(eigenbasis(b2, every)) -> ... -> unrotate`
# 2 errors reported
