optimizer o(lr = 1e-3, b1 = 0.9) {
  other: sign -> scale(lr)
}
# CHECK:STDERR
# UnusedHyperparameter.opal:1:24: error: hyperparameter `b1` of `o` is never used [UnusedHyperparameter]
#  1 | optimizer o(lr = 1e-3, b1 = 0.9) {
#    |                        ^~
#    = help: remove it, or pass it to a stage: sweeping it would change nothing
# 1 error reported
