optimizer o(lr = 1e-3) {
  other: sign -> scale(lr, 2)
}
# CHECK:STDERR
# WrongArity.opal:2:28: error: `scale` takes at most 1 argument [WrongArity]
#  2 |   other: sign -> scale(lr, 2)
#    |                            ^
#    = help: its parameters are: lr
# 1 error reported
