optimizer o(lr = 3x) {
  other: scale(lr)
}
# CHECK:STDERR
# InvalidNumber.opal:1:18: error: invalid number `3x` [InvalidNumber]
#  1 | optimizer o(lr = 3x) {
#    |                  ^~
#    = help: numbers look like `3`, `0.9` or `1e-8`
# 1 error reported
