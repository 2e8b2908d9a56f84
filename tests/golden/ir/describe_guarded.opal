# ARGS: ir --after describe
# The executable description of a route with an every(N) refresh and library calls: the guard
# and the inverse root's eps are registers of the host scalar program; calls are typed, with
# buffer-table operands.
optimizer guarded(lr = 1e-3, b2 = 0.95, eps = 1e-8) {
  matrix: shampoo_precond(b2, eps, every = 10) -> scale(lr)
}
# CHECK:OUT
# // after describe (route uniforms)
# uniforms computed on the host: hp[3] = r2, hp[4] = r9
#   r0 = const 1
#   r1 = hparam b2
#   r2 = sub r0, r1
#   r3 = step
#   r4 = eq r3, r0
#   r5 = const 10
#   r6 = mod r3, r5
#   r7 = const 0
#   r8 = eq r6, r7
#   r9 = or r4, r8
# // after describe (route matrix)
# route 0 `matrix`: shampoo_precond(b2, eps, every = 10) -> scale(lr) (matrix only)
#   buffers: b0 w:full, b1 g:full, b2 shampoo_precond.L:left, b3 shampoo_precond.R:right, b4 shampoo_precond.PL:left=eye, b5 shampoo_precond.PR:right=eye, b6 scratch:left, b7 scratch:right, b8 scratch:left, b9 scratch:right, b10 scratch:full, b11 scratch:full
#   r0 = step
#   r1 = const 1
#   r2 = eq r0, r1
#   r3 = const 10
#   r4 = mod r0, r3
#   r5 = const 0
#   r6 = eq r4, r5
#   r7 = or r2, r6
#   r8 = hparam eps
#   sharded by rows: local [0, 0), whole [0, 12) on the owner, finish [12, 13); the owner keeps shampoo_precond.L, shampoo_precond.R, shampoo_precond.PL, shampoo_precond.PR whole
#   -- local phase ends: gather b1 to the owner
#   0: b6:left = gemm{ta=false, tb=true, bf16=false}(b1:full, b1:full)
#   1: b7:right = gemm{ta=true, tb=false, bf16=false}(b1:full, b1:full)
#   2: kernel opal_r0_k0 over left
#   3: kernel opal_r0_k1 over right
#   4: b6:left = inv_root{p=4, damped=true}(b8:left, r8) if r7
#   5: b7:right = inv_root{p=4, damped=true}(b9:right, r8) if r7
#   6: kernel opal_r0_k2 over left
#   7: kernel opal_r0_k3 over left if r7
#   8: kernel opal_r0_k4 over right
#   9: kernel opal_r0_k5 over right if r7
#   10: b10:full = gemm{ta=false, tb=false, bf16=false}(b8:left, b1:full)
#   11: b11:full = gemm{ta=false, tb=false, bf16=false}(b10:full, b9:right)
#   -- whole phase ends: scatter b11
#   12: kernel opal_r0_k6 over full chunks of 16384
