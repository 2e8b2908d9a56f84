# A rejected state declaration is reported once: its uses and assignments stay quiet, and the
# hyperparameter passed to the broken stage is not called unused.
component c(k = 1.0) {
  state s = zeros(rows, cols, 3)
  s = s + u
  u = s * k
}
optimizer o(lr = 0.1, k = 2.0) { other: c(k) -> scale(lr) }
# CHECK:STDERR
# StateShapeMismatch_cascade.opal:4:13: error: `zeros` takes nothing, `rows`, `cols`, `rows, rows` or `cols, cols` [StateShapeMismatch]
#  4 |   state s = zeros(rows, cols, 3)
#    |             ^~~~~~~~~~~~~~~~~~~~
#    = help: `zeros` is full-sized; `zeros(rows)` holds one value per row; `zeros(rows, rows)` and `eye(rows)` are rows x rows
# 1 error reported
