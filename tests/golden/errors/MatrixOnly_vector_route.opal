# A `vector:` route whose pipeline needs matrices is rejected at compile time.
optimizer o(lr = 0.02) {
  matrix: momentum(0.95) -> ns -> scale(lr)
  vector: momentum(0.95) -> ns -> scale(lr)
}
# CHECK:STDERR
# MatrixOnly_vector_route.opal:4:3: error: `ns` needs a matrix, but this route takes vectors [MatrixOnly]
#  4 |   vector: momentum(0.95) -> ns -> scale(lr)
#    |   ^~~~~~
#    = help: route vectors through elementwise stages; matrix components belong in `matrix:` routes
# 1 error reported
