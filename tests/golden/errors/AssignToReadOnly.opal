component shrink(wd = 0.1) {
  w = w * (1 - wd)
}
# CHECK:STDERR
# AssignToReadOnly.opal:2:3: error: cannot assign to `w` [AssignToReadOnly]
#  2 |   w = w * (1 - wd)
#    |   ^
#    = help: only states, `let` bindings, u and g can be assigned
# 1 error reported
