# ARGS: ir --after all
# Constant folding removes the bias-correction select; DCE drops nothing else.
optimizer tiny(lr = 1e-2, b1 = 0.9) {
  other: momentum(b1, bias_correction = false) -> sign -> scale(lr)
}
# CHECK:OUT
# // after lower (route other)
# graph tiny.other
#   slot 0 momentum.m : full
#   %0 = step : scalar
#   %1 = dim rows : scalar
#   %2 = dim cols : scalar
#   %3 = dim numel : scalar
#   %4 = const 3.141592653589793 : scalar
#   %5 = const 1 : scalar
#   %6 = const 0 : scalar
#   %7 = hparam b1 : scalar
#   %8 = hparam lr : scalar
#   %9 = grad : full
#   %10 = param : full
#   %11 = const 0.9 : scalar   @momentum.opal:5:27
#   %12 = state_read momentum.m : full   @momentum.opal:7:9
#   %13 = mul %7, %12 : full   @momentum.opal:8:7
#   %14 = sub %5, %7 : scalar   @momentum.opal:8:18
#   %15 = mul %14, %9 : full   @momentum.opal:8:18
#   %16 = add %13, %15 : full   @momentum.opal:8:7
#   %17 = pow %7, %0 : scalar   @momentum.opal:9:45
#   %18 = sub %5, %17 : scalar   @momentum.opal:9:40
#   %19 = div %16, %18 : full   @momentum.opal:9:36
#   %20 = select %6, %19, %16 : full   @momentum.opal:9:12
#   %21 = mul %7, %20 : full   @momentum.opal:10:24
#   %22 = add %21, %15 : full   @momentum.opal:10:24
#   %23 = select %6, %22, %20 : full   @momentum.opal:10:7
#   %24 = state_write momentum.m, %16 : full   @passes_all.opal:4:10
#   %25 = sign %23 : full   @elementwise.opal:5:7
#   %26 = const 0.001 : scalar   @decay.opal:16:22
#   %27 = mul %8, %25 : full   @decay.opal:17:7
#   %28 = sub %10, %27 : full   @passes_all.opal:4:59
#   %29 = param_write %28 : full   @passes_all.opal:4:59
# // after expand (route other) (unchanged)
# graph tiny.other
#   slot 0 momentum.m : full
#   %0 = step : scalar
#   %1 = dim rows : scalar
#   %2 = dim cols : scalar
#   %3 = dim numel : scalar
#   %4 = const 3.141592653589793 : scalar
#   %5 = const 1 : scalar
#   %6 = const 0 : scalar
#   %7 = hparam b1 : scalar
#   %8 = hparam lr : scalar
#   %9 = grad : full
#   %10 = param : full
#   %11 = const 0.9 : scalar   @momentum.opal:5:27
#   %12 = state_read momentum.m : full   @momentum.opal:7:9
#   %13 = mul %7, %12 : full   @momentum.opal:8:7
#   %14 = sub %5, %7 : scalar   @momentum.opal:8:18
#   %15 = mul %14, %9 : full   @momentum.opal:8:18
#   %16 = add %13, %15 : full   @momentum.opal:8:7
#   %17 = pow %7, %0 : scalar   @momentum.opal:9:45
#   %18 = sub %5, %17 : scalar   @momentum.opal:9:40
#   %19 = div %16, %18 : full   @momentum.opal:9:36
#   %20 = select %6, %19, %16 : full   @momentum.opal:9:12
#   %21 = mul %7, %20 : full   @momentum.opal:10:24
#   %22 = add %21, %15 : full   @momentum.opal:10:24
#   %23 = select %6, %22, %20 : full   @momentum.opal:10:7
#   %24 = state_write momentum.m, %16 : full   @passes_all.opal:4:10
#   %25 = sign %23 : full   @elementwise.opal:5:7
#   %26 = const 0.001 : scalar   @decay.opal:16:22
#   %27 = mul %8, %25 : full   @decay.opal:17:7
#   %28 = sub %10, %27 : full   @passes_all.opal:4:59
#   %29 = param_write %28 : full   @passes_all.opal:4:59
# // after fold (route other)
# graph tiny.other
#   slot 0 momentum.m : full
#   %0 = step : scalar
#   %1 = dim rows : scalar
#   %2 = dim cols : scalar
#   %3 = dim numel : scalar
#   %4 = const 3.141592653589793 : scalar
#   %5 = const 1 : scalar
#   %6 = const 0 : scalar
#   %7 = hparam b1 : scalar
#   %8 = hparam lr : scalar
#   %9 = grad : full
#   %10 = param : full
#   %11 = const 0.9 : scalar   @momentum.opal:5:27
#   %12 = state_read momentum.m : full   @momentum.opal:7:9
#   %13 = mul %7, %12 : full   @momentum.opal:8:7
#   %14 = sub %5, %7 : scalar   @momentum.opal:8:18
#   %15 = mul %14, %9 : full   @momentum.opal:8:18
#   %16 = add %13, %15 : full   @momentum.opal:8:7
#   %17 = pow %7, %0 : scalar   @momentum.opal:9:45
#   %18 = sub %5, %17 : scalar   @momentum.opal:9:40
#   %19 = div %16, %18 : full   @momentum.opal:9:36
#   %20 = mul %7, %16 : full   @momentum.opal:10:24
#   %21 = add %20, %15 : full   @momentum.opal:10:24
#   %22 = state_write momentum.m, %16 : full   @passes_all.opal:4:10
#   %23 = sign %16 : full   @elementwise.opal:5:7
#   %24 = const 0.001 : scalar   @decay.opal:16:22
#   %25 = mul %8, %23 : full   @decay.opal:17:7
#   %26 = sub %10, %25 : full   @passes_all.opal:4:59
#   %27 = param_write %26 : full   @passes_all.opal:4:59
# // after dce (route other)
# graph tiny.other
#   slot 0 momentum.m : full
#   %0 = const 1 : scalar
#   %1 = hparam b1 : scalar
#   %2 = hparam lr : scalar
#   %3 = grad : full
#   %4 = param : full
#   %5 = state_read momentum.m : full   @momentum.opal:7:9
#   %6 = mul %1, %5 : full   @momentum.opal:8:7
#   %7 = sub %0, %1 : scalar   @momentum.opal:8:18
#   %8 = mul %7, %3 : full   @momentum.opal:8:18
#   %9 = add %6, %8 : full   @momentum.opal:8:7
#   %10 = state_write momentum.m, %9 : full   @passes_all.opal:4:10
#   %11 = sign %9 : full   @elementwise.opal:5:7
#   %12 = mul %2, %11 : full   @decay.opal:17:7
#   %13 = sub %4, %12 : full   @passes_all.opal:4:59
#   %14 = param_write %13 : full   @passes_all.opal:4:59
# // after fuse (route other)
# graph tiny.other
#   slot 0 momentum.m : full
#   %0 = const 1 : scalar
#   %1 = hparam b1 : scalar
#   %2 = hparam lr : scalar
#   %3 = grad : full
#   %4 = param : full
#   %5 = state_read momentum.m : full   @momentum.opal:7:9
#   %6 = mul %1, %5 : full   @momentum.opal:8:7
#   %7 = sub %0, %1 : scalar   @momentum.opal:8:18
#   %8 = mul %7, %3 : full   @momentum.opal:8:18
#   %9 = add %6, %8 : full   @momentum.opal:8:7
#   %10 = state_write momentum.m, %9 : full   @passes_all.opal:4:10
#   %11 = sign %9 : full   @elementwise.opal:5:7
#   %12 = mul %2, %11 : full   @decay.opal:17:7
#   %13 = sub %4, %12 : full   @passes_all.opal:4:59
#   %14 = param_write %13 : full   @passes_all.opal:4:59
# 0: kernel 0 [full] level 0
#   scalars: %0 %1 %2 %7
#   body: %3 %4 %5 %6 %8 %9 %11 %12 %13
#   effects: %14 %10
# // after memory (route other)
# graph tiny.other
#   slot 0 momentum.m : full
#   %0 = const 1 : scalar
#   %1 = hparam b1 : scalar
#   %2 = hparam lr : scalar
#   %3 = grad : full
#   %4 = param : full
#   %5 = state_read momentum.m : full   @momentum.opal:7:9
#   %6 = mul %1, %5 : full   @momentum.opal:8:7
#   %7 = sub %0, %1 : scalar   @momentum.opal:8:18
#   %8 = mul %7, %3 : full   @momentum.opal:8:18
#   %9 = add %6, %8 : full   @momentum.opal:8:7
#   %10 = state_write momentum.m, %9 : full   @passes_all.opal:4:10
#   %11 = sign %9 : full   @elementwise.opal:5:7
#   %12 = mul %2, %11 : full   @decay.opal:17:7
#   %13 = sub %4, %12 : full   @passes_all.opal:4:59
#   %14 = param_write %13 : full   @passes_all.opal:4:59
# 0: kernel 0 [full] level 0
#   scalars: %0 %1 %2 %7
#   body: %3 %4 %5 %6 %8 %9 %11 %12 %13
#   effects: %14 %10
# // after describe (route uniforms)
# uniforms computed on the host: hp[2] = r2
#   r0 = const 1
#   r1 = hparam b1
#   r2 = sub r0, r1
# // after describe (route other)
# route 0 `other`: momentum(b1, bias_correction = false) -> sign -> scale(lr)
#   buffers: b0 w:full, b1 g:full, b2 momentum.m:full
#   sharded by rows: every stage local
#   0: kernel opal_r0_k0 over full chunks of 16384
