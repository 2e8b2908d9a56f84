component damp(beta = 0.9, beta = 0.5) {
  u = beta * u
}
optimizer o(lr = 1e-3) {
  other: damp -> scale(lr)
}
# CHECK:STDERR
# Redefinition_param.opal:1:28: error: parameter `beta` of component `damp` is declared twice (first at Redefinition_param.opal:1:16) [Redefinition]
#  1 | component damp(beta = 0.9, beta = 0.5) {
#    |                            ^~~~
#    = help: give each parameter its own name
# 1 error reported
