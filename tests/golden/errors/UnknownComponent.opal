optimizer o(lr = 1e-3, b1 = 0.9, b2 = 0.999) {
  other: momentum(b1) -> adpat(b2) -> scale(lr)
}
# CHECK:STDERR
# UnknownComponent.opal:2:26: error: unknown component `adpat` [UnknownComponent]
#  2 |   other: momentum(b1) -> adpat(b2) -> scale(lr)
#    |                          ^~~~~
#    = help: did you mean `adapt`?
# 1 error reported
