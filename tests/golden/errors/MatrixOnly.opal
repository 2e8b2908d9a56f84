# PARAMS: w=[4,3] b=[7]
optimizer o(lr = 1e-3) {
  other: adapt_factored(0.9) -> scale(lr)
}
# CHECK:STDERR
# error: `adapt_factored` needs a matrix, but parameter `b` is a vector [7] [MatrixOnly]
#   = help: route vectors elsewhere with `vector:` or `other:` in optimizer `o`
