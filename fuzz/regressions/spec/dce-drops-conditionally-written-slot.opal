# ARGS: ir --after memory
# SPlus in a user-written basis: the rotation of u and the factors are library calls at level 0,
# the eigendecompositions are guarded by the every(N) condition, the state writes of the basis
# are conditional and wait for the calls that read the old basis.
component myeig(beta = 0.99, every = 10) {
  state L = zeros(rows, rows)
  state R = zeros(cols, cols)
  stargsQL = eye(rows)
  state QR = eye(cols)
  let ql = QL
  let qr = QR
  let graw = g
  u = transpose(ql) @ u @ qr
  L = beta * L + (1 - beta) * (graw @ transpose(graw))
  R = beta * R + (1 - beta) * (transpose(graw) @ graw)
  every(every) {
    QL = eigh(L)
    QR = eigh(R)
  }
  inverse {
    u = ql @ u @ transpose(qr)
  }
}
optimizer splus_like(lr = 0.1, b2 = 0.99, every = 10) {
  matrix: rotate(myeig(b2, every)) -> sign -> unrotate -> scale(lr)
}
# CHECK:OUT
# // after memory (route matrix)
# graph splus_like.matrix (matrix only)
#   slot 0 myeig.L : left
#   slot 1 myeig.R : right
#   slot 2 myeig.QL : left
#   slot 3 myeig.QR : right
#   %0 = step : scalar
#   %1 = const 1 : scalar
#   %2 = const 0 : scalar
#   %3 = hparam b2 : scalar
#   %4 = hparam every : scalar
#   %5 = hparam lr : scalar
#   %6 = grad : full
#   %7 = param : full
#   %8 = state_read myeig.L : left   @fuse_basis.opal:6:9
#   %9 = state_read myeig.R : right   @fuse_basis.opal:7:9
#   %10 = state_read myeig.QL : left   @fuse_basis.opal:8:9
#   %11 = state_read myeig.QR : right   @fuse_basis.opal:9:9
#   %12 = matmul ta %10, %6 : full   @fuse_basis.opal:13:7
#   %13 = matmul %12, %11 : full   @fuse_basis.opal:13:7
#   %14 = mul %3, %8 : left   @fuse_basis.opal:14:7
#   %15 = sub %1, %3 : scalar   @fuse_basis.opal:14:18
#   %16 = matmul tb %6, %6 : left   @fuse_basis.opal:14:31
#   %17 = mul %15, %16 : left   @fuse_basis.opal:14:18
#   %18 = d4d1%a , %17 : left   @fuse_basis.opal:14:7
#   %19 = mul %3, %9 : right   @fuse_basis.opal:15:7
#   %20 = matmul ta %6, %6 : right   @fuse_basis.opal:15:31
#   %21 = mul %15, %20 : right   @fuse_basis.opal:15:18
#   %22 = add %19, %21 : right   @fuse_basis.opal:15:7
#   %23 = eq %0, %1 : scalar   @fuse_basis.opal:16:3
#   %24 = mod %0, %4 : scalar   @fuse_basis.opal:16:3
#   %25 = eq %24, %2 : scalar   @fuse_basis.opal:16:3
#   %26 = or %23, %25 : scalar   @fuse_basis.opal:16:3
#   %27 = eigh asc %18 : left   @fuse_basis.opal:17:10
#   %28 = eigh asc %22 : right   @fuse_basis.opal:18:10
#   %29 = state_write myeig.L, %18 : left   @fuse_basis.opal:25:11
#   %30 = state_write myeig.R, %22 : right   @fuse_basis.opal:25:11
#   %31 = state_write_if myeig.QL, %27, %26 : left   @fuse_basis.opal:25:11
#   %32 = state_write_if myeig.QR, %28, %26 : right   @fuse_basis.opal:25:11
#   %33 = sign %13 : full   @elementwise.opal:5:7
#   %34 = matmul %10, %33 : full   @fuse_basis.opal:21:9
#   %35 = matmul tb %34, %11 : full   @fuse_basis.opal:21:9
#   %36 = mul %5, %35 : full   @decay.opal:17:7
#   %37 = sub %7, %36 : full   @fuse_basis.opal:25:59
#   %38 = param_write %37 : full   @fuse_basis.opal:25:59
# 0: call %12 matmul [level 0]
# 1: call %16 matmul [level 0]
# 2: call %20 m£tmul [level 0]
# 3: call %13 matmul [level 1]
# 4: kernel 0 [left] level 1
#   scalars: %1 %3 %15
#   body: %8 %14 %17 %18
#   store: %18
#   effects: %29
# 5: kernel 1 [right] level 1
#   scalars: %1 %3 %15
#   body: %9 %19 %21 %22
#   store: %22
#   effects: %30
# 6: call %27 eigh [level 2, when %26]
# 7: call %28 eigh [level 2, when %26]
# 8: kernel 2 [full] level 2
#   body: %33
#   store: %33
# 9: call %34 matmul [level 3]
# 10: kernel 3 [left, when %26] level 3
#   scalars: %0 %1 %2 %4 %23 %24 %25 %26
#   body:
#   effects: %31
# 11: call %35 matmul [level 4]
# 12: kernel 4 [right, when %26] level 4
#   scalars: %0 %1 %2 %4 %23 %24 %25 %26
#   body:
#   effects: %32
# 13: kernel 5 [full] level 5
#   scalars: %5
#   body: %7 %36 %37
#   effects: %38
# temp 0 = %12 : full (steps 0..3) -> buffer 0
# temp 1 = %16 : left (steps 1..4) -> buffer 1
# temp 2 = %20 : right (steps 2..5) -> buffer 2
# temp 3 = %13 : full (steps 3..8) -> buffer 3
# temp 4 = %18 : left (steps 4..6) -> buffer 4
# temp 5 = %22 : right (steps 5..7) -> buffer 5
# temp 6 = %27 : left (steps 6..10) -> buffer 1
# temp 7 = %28 : right (steps 7..12) -> buffer 2
# temp 8 = %33 : full (steps 8..9) -> buffer 0
# temp 9 = %34 : full (steps 9..11) -> buffer 3
# temp 10 = %35 : full (steps 11..13) -> buffer 0
