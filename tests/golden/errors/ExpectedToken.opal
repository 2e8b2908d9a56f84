optimizer o(lr = 1e-3) {
  other: scale(lr -> sign
}
# CHECK:STDERR
# ExpectedToken.opal:2:19: error: expected `)` to close the argument list, found `->` [ExpectedToken]
#  2 |   other: scale(lr -> sign
#    |                   ^~
# 1 error reported
