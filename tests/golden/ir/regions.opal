# ARGS: ir --after dce
# An every(N) block's assignment is a region op, guard(value, cond), kept by the passes (the
# state write becomes a conditional write of it); guard inference reads it and the fusion pass
# forms kernels without it (see describe_guarded.opal for the guarded kernel).
component slow(every = 3) {
  state m = zeros
  every(every) { m = sign(u) }
  u = m
}
optimizer every_other(lr = 1e-2) {
  other: slow -> scale(lr)
}
# CHECK:OUT
# // after dce (route other)
# graph every_other.other
#   slot 0 slow.m : full
#   %0 = step : scalar
#   %1 = const 1 : scalar
#   %2 = const 0 : scalar
#   %3 = hparam lr : scalar
#   %4 = grad : full
#   %5 = param : full
#   %6 = const 3 : scalar   @regions.opal:5:24
#   %7 = state_read slow.m : full   @regions.opal:6:9
#   %8 = eq %0, %1 : scalar   @regions.opal:7:3
#   %9 = mod %0, %6 : scalar   @regions.opal:7:3
#   %10 = eq %9, %2 : scalar   @regions.opal:7:3
#   %11 = or %8, %10 : scalar   @regions.opal:7:3
#   %12 = sign %4 : full   @regions.opal:7:22
#   %13 = guard %12, %11 : full   @regions.opal:7:3
#   %14 = select %11, %13, %7 : full   @regions.opal:7:3
#   %15 = state_write_if slow.m, %13, %11 : full   @regions.opal:11:10
#   %16 = mul %3, %14 : full   @decay.opal:17:7
#   %17 = sub %5, %16 : full   @regions.opal:11:18
#   %18 = param_write %17 : full   @regions.opal:11:18
