# PARAMS: w=[4,3] b=[7]
optimizer o(lr = 1e-3) {
  matrix: sign -> scale(lr)
}
# CHECK:STDERR
# error: parameter `b` (vector [7]) matches no route of optimizer `o` [UnroutedParameter]
#   = help: add an `other:` route, or a pattern route such as "b": ...
