# A name close to nothing: the help lists the builtins (from the op registry, ops.def).
component c() {
  u = zzzzqqq(u)
}
optimizer o(lr = 1) {
  other: c -> scale(lr)
}
# CHECK:STDERR
# UnknownFunction_list.opal:3:7: error: unknown function `zzzzqqq` [UnknownFunction]
#  3 |   u = zzzzqqq(u)
#    |       ^~~~~~~~~~
#    = help: builtins: sqrt abs sign exp log cos sin tanh floor bf16 pow min max mod select row_sum row_mean col_sum col_mean sum mean norm rms global_sum
# 1 error reported
