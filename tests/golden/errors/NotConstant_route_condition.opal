# A route condition is decided once per parameter from its shape: a hyperparameter cannot be in it.
optimizer o(lr = 0.1) {
  where(rank == lr): sign -> scale(lr)
  other: scale(lr)
}
# CHECK:STDERR
# NotConstant_route_condition.opal:3:9: error: a route's condition must be an expression of the parameter's rank, rows, cols and numel [NotConstant]
#  3 |   where(rank == lr): sign -> scale(lr)
#    |         ^~~~~~~~~~
#    = help: routing is decided once per parameter from its shape: compare sizes with numbers, e.g. `where(rank == 2 && rows >= 128):`
# 1 error reported
