# PARAMS: w=[8,4] ln.bias=[8]
optimizer o(lr = 0.02) {
  other: momentum(0.95) -> ns -> scale(lr)
}
# CHECK:STDERR
# error: `ns` needs a matrix, but parameter `ln.bias` is a vector [8] [MatrixOnly]
#   = help: route vectors elsewhere with `vector:` or `other:` in optimizer `o`
