optimizer o(lr = 1e-3) {
  other: sign -> adamw(lr = lr)
}
# CHECK:STDERR
# DelegationInPipeline.opal:2:18: error: optimizer `adamw` cannot be one stage of a pipeline [DelegationInPipeline]
#  2 |   other: sign -> adamw(lr = lr)
#    |                  ^~~~~
#    = help: give it a route of its own: `other: adamw(...)`
# 1 error reported
