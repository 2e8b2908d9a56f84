# a cell that does not compile is an error of `opal check` too, not only of `opal grid`
grid stacked {
  first = { adam: adamw, sgd: sgd }
  second = { lion: lion }
  other: first -> second
}
# CHECK:STDERR
# BadGrid_cell.opal:2:6: error: cell `adam / lion` does not compile: optimizer `adamw` cannot be one stage of a pipeline [BadGrid]
#  2 | grid stacked {
#    |      ^~~~~~~
#    = help: its routes are `other: adamw -> lion`; `opal grid` prints every cell
# BadGrid_cell.opal:2:6: error: cell `sgd / lion` does not compile: optimizer `sgd` cannot be one stage of a pipeline [BadGrid]
#  2 | grid stacked {
#    |      ^~~~~~~
#    = help: its routes are `other: sgd -> lion`; `opal grid` prints every cell
# 2 errors reported
