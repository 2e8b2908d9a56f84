component root() {
  u = sqr(u)
}
# CHECK:STDERR
# UnknownFunction.opal:2:7: error: unknown function `sqr` [UnknownFunction]
#  2 |   u = sqr(u)
#    |       ^~~~~~
#    = help: did you mean `sqrt`?
# 1 error reported
