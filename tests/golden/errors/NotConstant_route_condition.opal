# A route condition is decided once per parameter when the optimizer is built: the step count t
# (or a tensor) cannot be in it; sizes and hyperparameters can.
optimizer o(lr = 0.1) {
  where(rank == 2 && t > 10): sign -> scale(lr)
  other: scale(lr)
}
# CHECK:STDERR
# NotConstant_route_condition.opal:4:9: error: a route's condition must be an expression of the parameter's rank, rows, cols and numel and the optimizer's hyperparameters [NotConstant]
#  4 |   where(rank == 2 && t > 10): sign -> scale(lr)
#    |         ^~~~~~~~~~~~~~~~~~~
#    = help: routing is decided once per parameter when the optimizer is built: compare sizes with numbers or hyperparameters, e.g. `where(rank == 2 && rows <= max_dim):`
# 1 error reported
