# A parameter's range (`in [0, 1)`) has numbers for its ends, holds some value, and holds the
# parameter's default.
component empty(a = 1 in [1, 0]) {
  u = a * u
}
component loose(a = 1 in [0, lr]) {
  u = a * u
}
component outside(a = 2 in [0, 1]) {
  u = a * u
}
optimizer own(lr = -1 in [0, inf)) {
  other: sign -> scale(lr)
}
# CHECK:STDERR
# ArgumentOutOfRange_range.opal:3:23: error: the range [1, 0] of `a` holds no value [ArgumentOutOfRange]
#  3 | component empty(a = 1 in [1, 0]) {
#    |                       ^~~~~~~~~
#    = help: write the lower end first: `in [0, 1)`
# ArgumentOutOfRange_range.opal:6:30: error: the ends of the range of `a` must be numbers [NotConstant]
#  6 | component loose(a = 1 in [0, lr]) {
#    |                              ^~
#    = help: write them as numbers or `inf`: `in [0, inf)`
# ArgumentOutOfRange_range.opal:9:23: error: the default of `a` of component `outside` is 2, outside its range [0, 1] [ArgumentOutOfRange]
#  9 | component outside(a = 2 in [0, 1]) {
#    |                       ^
#    = help: a default must be a value the parameter takes
# ArgumentOutOfRange_range.opal:12:20: error: the default of `lr` of optimizer `own` is -1, outside its range [0, inf) [ArgumentOutOfRange]
#  12 | optimizer own(lr = -1 in [0, inf)) {
#     |                    ^~
#     = help: a default must be a value the parameter takes
# 4 errors reported
