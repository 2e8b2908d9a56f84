# ARGS: ir --after describe
# A global gradient norm in two routes: each route's first phase reduces its g^2 and writes the
# tensor's share (a one-element kernel); the step adds the shares up between the phases; the
# second phase reads the sum as a uniform after the hyperparameters.
optimizer clipped(lr = 1e-2, max_norm = 1.0) {
  matrix: clip_global_norm(max_norm) -> momentum(0.9) -> scale(lr)
  other:  clip_global_norm(max_norm) -> scale(lr)
}
# CHECK:OUT
# // after describe (route uniforms)
# uniforms computed on the host: hp[3] = r7
#   r0 = const 1
#   r1 = hparam max_norm
#   r2 = hparam clip_global_norm:global_sum@elementwise.opal:37:35
#   r3 = sqrt r2
#   r4 = const 1e-06
#   r5 = add r3, r4
#   r6 = div r1, r5
#   r7 = min r0, r6
# // after describe (route matrix)
# route 0 `matrix`: clip_global_norm(max_norm) -> momentum(0.9) -> scale(lr)
#   buffers: b0 w:full, b1 g:full, b2 momentum.m:full, b3 scratch:scalar, b4 scratch:scalar
#   sharded by rows: local [0, 0), whole [0, 2) on the owner, finish [2, 3); the owner keeps no state whole
#   -- local phase ends: gather b1 to the owner
#   0: kernel opal_r0_k0 over full zeroing b3 whole b3
#   1: kernel opal_r0_k1 over scalar
#   -- whole phase ends: scatter nothing
#   -- every route's first phase ends: clip_global_norm:global_sum@elementwise.opal:37:35 += b4
#   2: kernel opal_r0_k2 over full chunks of 16384
# // after describe (route other)
# route 1 `other`: clip_global_norm(max_norm) -> scale(lr)
#   buffers: b0 w:full, b1 g:full, b2 scratch:scalar, b3 scratch:scalar
#   sharded by rows: local [0, 0), whole [0, 2) on the owner, finish [2, 3); the owner keeps no state whole
#   -- local phase ends: gather b1 to the owner
#   0: kernel opal_r1_k0 over full zeroing b2 whole b2
#   1: kernel opal_r1_k1 over scalar
#   -- whole phase ends: scatter nothing
#   -- every route's first phase ends: clip_global_norm:global_sum@elementwise.opal:37:35 += b3
#   2: kernel opal_r1_k2 over full chunks of 16384
