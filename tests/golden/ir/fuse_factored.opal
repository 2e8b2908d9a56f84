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
#   %5 = const 1e-30 : scalar   @adapt.opal:14:46
#   %6 = state_read adapt_factored.r : rows   @adapt.opal:15:9
#   %7 = state_read adapt_factored.c : cols   @adapt.opal:16:9
#   %8 = mul %1, %6 : rows   @adapt.opal:17:7
#   %9 = sub %0, %1 : scalar   @adapt.opal:17:18
#   %10 = mul %3, %3 : full   @adapt.opal:17:39
#   %11 = row_sum %10 : rows   @adapt.opal:17:31
#   %12 = mul %9, %11 : rows   @adapt.opal:17:18
#   %13 = add %8, %12 : rows   @adapt.opal:17:7
#   %14 = mul %1, %7 : cols   @adapt.opal:18:7
#   %15 = col_sum %10 : cols   @adapt.opal:18:31
#   %16 = mul %9, %15 : cols   @adapt.opal:18:18
#   %17 = add %14, %16 : cols   @adapt.opal:18:7
#   %18 = mul %13, %17 : full   @adapt.opal:19:11
#   %19 = sum %13 : scalar   @adapt.opal:19:19
#   %20 = div %18, %19 : full   @adapt.opal:19:11
#   %21 = add %20, %5 : full   @adapt.opal:20:16
#   %22 = sqrt %21 : full   @adapt.opal:20:11
#   %23 = div %3, %22 : full   @adapt.opal:20:7
#   %24 = state_write adapt_factored.r, %13 : rows   @fuse_factored.opal:4:11
#   %25 = state_write adapt_factored.c, %17 : cols   @fuse_factored.opal:4:11
#   %26 = mul %2, %23 : full   @decay.opal:17:7
#   %27 = sub %4, %26 : full   @fuse_factored.opal:4:40
#   %28 = param_write %27 : full   @fuse_factored.opal:4:40
# 0: kernel 0 [full, indexed, serial] level 0
#   body: %3 %10
#   reduce: %11 %15
# 1: kernel 1 [rows, serial] level 1
#   scalars: %0 %1 %9
#   body: %6 %8 %12 %13
#   reduce: %19
#   store: %13
#   effects: %24
# 2: kernel 2 [cols] level 1
#   scalars: %0 %1 %9
#   body: %7 %14 %16 %17
#   store: %17
#   effects: %25
# 3: kernel 3 [full, indexed] level 2
#   scalars: %2 %5 %19
#   body: %3 %4 %18 %20 %21 %22 %23 %26 %27
#   effects: %28
# temp 0 = %11 : rows (steps 0..1)
# temp 1 = %15 : cols (steps 0..2)
# temp 2 = %19 : scalar (steps 1..3)
# temp 3 = %13 : rows (steps 1..3)
# temp 4 = %17 : cols (steps 2..3)
