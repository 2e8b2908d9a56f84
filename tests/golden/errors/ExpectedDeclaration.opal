optimiser o(lr = 1e-3) {
  other: scale(lr)
}
# CHECK:STDERR
# ExpectedDeclaration.opal:1:1: error: expected `component`, `optimizer`, `fn` or `grid`, found identifier `optimiser` [ExpectedDeclaration]
#  1 | optimiser o(lr = 1e-3) {
#    | ^~~~~~~~~
#    = help: every definition starts with one of these keywords
# 1 error reported
