# eigh takes a square matrix
component basis() {
  u = eigh(u)
}
optimizer o(lr = 1e-3) {
  matrix: basis -> scale(lr)
  other: scale(lr)
}
# CHECK:STDERR
# WrongArgumentShape.opal:3:12: error: `eigh` takes a square matrix, but this is a full tensor [WrongArgumentShape]
#  3 |   u = eigh(u)
#    |            ^
# 1 error reported
