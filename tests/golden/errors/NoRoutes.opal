optimizer o(lr = 1e-3) {
}
# CHECK:STDERR
# NoRoutes.opal:1:11: error: optimizer `o` has no routes [NoRoutes]
#  1 | optimizer o(lr = 1e-3) {
#    |           ^
#    = help: add one, e.g. `other: momentum(0.9) -> scale(lr)`
# 1 error reported
