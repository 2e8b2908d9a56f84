# ARGS: ir --after memory
# Per-tensor scalar state (NAdam's mu product): read as a kernel scalar, written once per tensor
# by a one-element kernel placed after every kernel that reads the old value.
optimizer o(lr = 2e-3) {
  other: nadam_core -> scale(lr)
}
# CHECK:OUT
# // after memory (route other)
# graph o.other
#   slot 0 nadam_core.m : full
#   slot 1 nadam_core.v : full
#   slot 2 nadam_core.mu_product : scalar
#   %0 = step : scalar
#   %1 = const 1 : scalar
#   %2 = hparam lr : scalar
#   %3 = grad : full
#   %4 = param : full
#   %5 = const 0.9 : scalar   @nadam.opal:6:27
#   %6 = const 0.999 : scalar   @nadam.opal:6:47
#   %7 = const 1e-08 : scalar   @nadam.opal:6:70
#   %8 = const 0.004 : scalar   @nadam.opal:6:94
#   %9 = state_read nadam_core.m : full   @nadam.opal:7:9
#   %10 = state_read nadam_core.v : full   @nadam.opal:8:9
#   %11 = state_read nadam_core.mu_product : scalar   @nadam.opal:9:9
#   %12 = eq %0, %1 : scalar
#   %13 = select %12, %1, %11 : scalar   @nadam.opal:9:3
#   %14 = const 0.5 : scalar   @nadam.opal:10:22
#   %15 = const 0.96 : scalar   @nadam.opal:10:28
#   %16 = mul %0, %8 : scalar   @nadam.opal:10:35
#   %17 = pow %15, %16 : scalar   @nadam.opal:10:28
#   %18 = mul %14, %17 : scalar   @nadam.opal:10:22
#   %19 = sub %1, %18 : scalar   @nadam.opal:10:17
#   %20 = mul %5, %19 : scalar   @nadam.opal:10:12
#   %21 = add %0, %1 : scalar   @nadam.opal:11:41
#   %22 = mul %21, %8 : scalar   @nadam.opal:11:40
#   %23 = pow %15, %22 : scalar   @nadam.opal:11:33
#   %24 = mul %14, %23 : scalar   @nadam.opal:11:27
#   %25 = sub %1, %24 : scalar   @nadam.opal:11:22
#   %26 = mul %5, %25 : scalar   @nadam.opal:11:17
#   %27 = mul %13, %20 : scalar   @nadam.opal:12:16
#   %28 = mul %5, %9 : full   @nadam.opal:13:7
#   %29 = const 0.09999999999999998 : scalar   @nadam.opal:13:16
#   %30 = mul %29, %3 : full   @nadam.opal:13:16
#   %31 = add %28, %30 : full   @nadam.opal:13:7
#   %32 = mul %6, %10 : full   @nadam.opal:14:7
#   %33 = const 0.0010000000000000009 : scalar   @nadam.opal:14:16
#   %34 = mul %33, %3 : full   @nadam.opal:14:16
#   %35 = mul %34, %3 : full   @nadam.opal:14:16
#   %36 = add %32, %35 : full   @nadam.opal:14:7
#   %37 = pow %6, %0 : scalar   @nadam.opal:15:25
#   %38 = sub %1, %37 : scalar   @nadam.opal:15:20
#   %39 = div %36, %38 : full   @nadam.opal:15:16
#   %40 = sqrt %39 : full   @nadam.opal:15:11
#   %41 = add %40, %7 : full   @nadam.opal:15:11
#   %42 = sub %1, %20 : scalar   @nadam.opal:16:7
#   %43 = sub %1, %27 : scalar   @nadam.opal:16:18
#   %44 = div %42, %43 : scalar   @nadam.opal:16:7
#   %45 = mul %44, %3 : full   @nadam.opal:16:7
#   %46 = div %45, %41 : full   @nadam.opal:16:7
#   %47 = mul %27, %26 : scalar   @nadam.opal:16:60
#   %48 = sub %1, %47 : scalar   @nadam.opal:16:55
#   %49 = div %26, %48 : scalar   @nadam.opal:16:45
#   %50 = mul %49, %31 : full   @nadam.opal:16:45
#   %51 = div %50, %41 : full   @nadam.opal:16:45
#   %52 = add %46, %51 : full   @nadam.opal:16:7
#   %53 = state_write nadam_core.m, %31 : full   @fuse_scalar_state.opal:5:10
#   %54 = state_write nadam_core.v, %36 : full   @fuse_scalar_state.opal:5:10
#   %55 = state_write nadam_core.mu_product, %27 : scalar   @fuse_scalar_state.opal:5:10
#   %56 = mul %2, %52 : full   @decay.opal:17:7
#   %57 = sub %4, %56 : full   @fuse_scalar_state.opal:5:24
#   %58 = param_write %57 : full   @fuse_scalar_state.opal:5:24
# 0: kernel 0 [full] level 0
#   scalars: %0 %1 %2 %5 %6 %7 %8 %11 %12 %13 %14 %15 %16 %17 %18 %19 %20 %21 %22 %23 %24 %25 %26 %27 %29 %33 %37 %38 %42 %43 %44 %47 %48 %49
#   body: %3 %4 %9 %10 %28 %30 %31 %32 %34 %35 %36 %39 %40 %41 %45 %46 %50 %51 %52 %56 %57
#   effects: %58 %54 %53
# 1: kernel 1 [one] level 0
#   scalars: %0 %1 %5 %8 %11 %12 %13 %14 %15 %16 %17 %18 %19 %20 %27
#   body:
#   effects: %55
