# A hyperparameter passed to a stage that ignores it: the hint names the stage and its parameter.
component c(k = 1.0) { u = u * 2 }
optimizer o(lr = 0.1, k = 2.0) { other: c(k) -> scale(lr) }
# CHECK:STDERR
# UnusedHyperparameter_stage.opal:3:23: error: hyperparameter `k` of `o` is never used [UnusedHyperparameter]
#  3 | optimizer o(lr = 0.1, k = 2.0) { other: c(k) -> scale(lr) }
#    |                       ^
#    = help: it is passed to `c` at UnusedHyperparameter_stage.opal:3:41 as `k`, which `c` does not use: remove it, or pass it to a stage that reads it
# 1 error reported
