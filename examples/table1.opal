# The seed paper's Table 1 as a list: each cell is a stdlib optimizer with its own defaults
# (`opal list` shows them all). `opal ablate examples/table1.opal --workload mlp`.
grid table1 {
  opt = { adam: adam, signum: signum, lion: lion, adafactor: adafactor_factored, shampoo: shampoo,
               soap: soap, muon: muon, adamuon: adamuon }
  other: opt
  baseline(adam)
  sweep lr = around(10, per_decade = 2)
  seeds = 2
}
