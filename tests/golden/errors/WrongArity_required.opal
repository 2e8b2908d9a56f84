# A hyperparameter with no default, passed to a parameter with a range (it crashed the lowering)
optimizer o(lr = 1e-3, b2) {
  other: momentum(b2) -> scale(lr)
}
# CHECK:STDERR
# WrongArity_required.opal:2:24: error: hyperparameter `b2` of `o` needs a default value [WrongArity]
#  2 | optimizer o(lr = 1e-3, b2) {
#    |                        ^~
#    = help: write `b2 = ...`
# 1 error reported
