optimizer o(lr = 0.1) {
  embedding, head: scale(lr)
  matrix: sign -> scale(lr)
  head, other: scale(2 * lr)
}
# CHECK:STDERR
# ShadowedRoute.opal:4:3: warning: `head` is named by an earlier route of `o`, which takes those parameters first [ShadowedRoute]
#  4 |   head, other: scale(2 * lr)
#    |   ^~~~~~~~~~~
#    = help: name each class, role and pattern in one route
