component clip(c = 1) {
  u = min(max(u, -c), c)
}
component clip(c = 2) {
  u = u * c
}
# CHECK:STDERR
# Redefinition.opal:4:11: error: `clip` is defined twice [Redefinition]
#  4 | component clip(c = 2) {
#    |           ^~~~
#    = help: rename one of them
# 1 error reported
