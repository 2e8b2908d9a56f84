# State precision as an ablation axis (issue 17): AdamW and Muon with f32 state, bf16 state
# rounded to nearest, bf16 state rounded stochastically, and blockwise 8-bit state (q8, blocks
# of 256), each a route's `state(...)` over the stdlib optimizer (every slot that matrix work
# does not read, q8: every parameter-shaped one; through delegation, so Muon's AdamW side too).
# `opal ablate examples/precision.opal --workload gpt` (scripts/prepare_brown.sh first); the
# report's state column shows the bytes each keeps.
optimizer adamw_bf16(lr = 1e-3, wd = 0.01) {
  other state(bf16): adamw(lr = lr, wd = wd)
}
optimizer adamw_bf16_sr(lr = 1e-3, wd = 0.01) {
  other state(bf16, stochastic): adamw(lr = lr, wd = wd)
}
optimizer adamw_q8(lr = 1e-3, wd = 0.01) {
  other state(q8): adamw(lr = lr, wd = wd)
}
optimizer muon_bf16(lr = 0.02, wd = 0.0) {
  other state(bf16): muon(lr = lr, wd = wd)
}
optimizer muon_bf16_sr(lr = 0.02, wd = 0.0) {
  other state(bf16, stochastic): muon(lr = lr, wd = wd)
}
optimizer muon_q8(lr = 0.02, wd = 0.0) {
  other state(q8): muon(lr = lr, wd = wd)
}
grid precision {
  opt = { adamw: adamw, adamw_bf16: adamw_bf16, adamw_bf16_sr: adamw_bf16_sr, adamw_q8: adamw_q8,
          muon: muon, muon_bf16: muon_bf16, muon_bf16_sr: muon_bf16_sr, muon_q8: muon_q8 }
  other: opt
  baseline(adamw)
  sweep lr = around(4, per_decade = 2)
  seeds = 2
}
