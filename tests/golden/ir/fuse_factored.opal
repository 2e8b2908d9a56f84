# ARGS: ir --after fuse
# Adafactor: a reduction kernel, row and column kernels, then the update.
optimizer fact(lr = 1e-2, b2 = 0.999) {
  matrix: adapt_factored(b2, 1e-30) -> scale(lr)
}
# CHECK:OUT
# // after fuse (route matrix)
# graph fact.matrix (matrix only)
#   slot 0 adapt_factored.r : rows
#   slot 1 adapt_factored.c : cols
#   %0 = const 1 : scalar
#   %1 = hparam b2 : scalar
#   %2 = hparam lr : scalar
#   %3 = grad : full
#   %4 = param : full
#   %5 = const 1e-30 : scalar   @adapt.opal:16:56
#   %6 = state_read adapt_factored.r : rows   @adapt.opal:17:9
#   %7 = state_read adapt_factored.c : cols   @adapt.opal:18:9
#   %8 = mul %1, %6 : rows   @adapt.opal:19:7
#   %9 = sub %0, %1 : scalar   @adapt.opal:19:18
#   %10 = mul %3, %3 : full   @adapt.opal:19:39
#   %11 = add %10, %5 : full   @adapt.opal:19:39
#   %12 = row_sum %11 : rows   @adapt.opal:19:31
#   %13 = mul %9, %12 : rows   @adapt.opal:19:18
#   %14 = add %8, %13 : rows   @adapt.opal:19:7
#   %15 = mul %1, %7 : cols   @adapt.opal:20:7
#   %16 = col_sum %11 : cols   @adapt.opal:20:31
#   %17 = mul %9, %16 : cols   @adapt.opal:20:18
#   %18 = add %15, %17 : cols   @adapt.opal:20:7
#   %19 = sum %14 : scalar   @adapt.opal:21:20
#   %20 = div %18, %19 : cols   @adapt.opal:21:15
#   %21 = mul %14, %20 : full   @adapt.opal:21:11
#   %22 = sqrt %21 : full   @adapt.opal:22:11
#   %23 = div %3, %22 : full   @adapt.opal:22:7
#   %24 = state_write adapt_factored.r, %14 : rows   @fuse_factored.opal:4:11
#   %25 = state_write adapt_factored.c, %18 : cols   @fuse_factored.opal:4:11
#   %26 = mul %2, %23 : full   @decay.opal:17:7
#   %27 = sub %4, %26 : full   @fuse_factored.opal:4:40
#   %28 = param_write %27 : full   @fuse_factored.opal:4:40
# 0: kernel 0 [full, indexed, serial] level 0
#   scalars: %5
#   body: %3 %10 %11
#   reduce: %12 %16
# 1: kernel 1 [rows, serial] level 1
#   scalars: %0 %1 %9
#   body: %6 %8 %13 %14
#   reduce: %19
#   store: %14
#   effects: %24
# 2: kernel 2 [cols] level 2
#   scalars: %0 %1 %9 %19
#   body: %7 %15 %17 %18 %20
#   store: %20
#   effects: %25
# 3: kernel 3 [full, indexed] level 3
#   scalars: %2
#   body: %3 %4 %21 %22 %23 %26 %27
#   effects: %28
# temp 0 = %12 : rows (steps 0..1)
# temp 1 = %16 : cols (steps 0..2)
# temp 2 = %19 : scalar (steps 1..2)
# temp 3 = %14 : rows (steps 1..3)
# temp 4 = %20 : cols (steps 2..3)
