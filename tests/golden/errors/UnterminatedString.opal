optimizer o(lr = 1e-3) {
  "embed*: scale(lr)
}
# CHECK:STDERR
# UnterminatedString.opal:2:3: error: unterminated string [UnterminatedString]
#  2 |   "embed*: scale(lr)
#    |   ^~~~~~~~~~~~~~~~~~
#    = help: close it with `"` on the same line
# UnterminatedString.opal:3:1: error: expected `:` after the route's parameter class, found `}` [ExpectedToken]
#  3 | }
#    | ^
# 2 errors reported
