# A bf16 state read by matrix work: library calls take f32 operands in place.
component basis_bf16() {
  state Q: bf16 = eye(rows)
  u = Q @ u
  Q = 0.5 * Q
}
optimizer o(lr = 0.01) {
  matrix: basis_bf16 -> scale(lr)
}
# CHECK:STDERR
# StorageMismatch.opal:3:9: error: state `basis_bf16.Q` is stored as bf16, but `matmul` reads it as a matrix [StorageMismatch]
#  3 |   state Q: bf16 = eye(rows)
#    |         ^
#    = help: matrix work takes f32 operands: store this state as f32 (only elementwise state can be bf16)
# 1 error reported
