# A range belongs to a component's or an optimizer's parameter: a fn is expanded where it is
# called, and a grid's parameters only set defaults.
fn half(x in [0, 1]) = x / 2
grid g(lr = 1e-3 in [0, inf)) {
  norm = { sign: sign }
  other: norm -> scale(lr)
}
# CHECK:STDERR
# MisplacedRange.opal:4:18: error: `lr` cannot have a range here [MisplacedRange]
#  4 | grid g(lr = 1e-3 in [0, inf)) {
#    |                  ^~~~~~~~~~~
#    = help: a grid's parameter sets a default: the ranges are the optimizer's
# MisplacedRange.opal:3:11: error: `x` cannot have a range here [MisplacedRange]
#  3 | fn half(x in [0, 1]) = x / 2
#    |           ^~~~~~~~~
#    = help: a fn is expanded where it is called: give the range to the parameter that takes its value
# 2 errors reported
