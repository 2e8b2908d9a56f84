// `external:COMMAND` workloads: any trainer that takes `--spec FILE --seed N --hp NAME=VALUE...`
// and prints JSON lines `{"step": ..., "loss": ...}` (optionally "val_loss", "accuracy", or
// "diverged": true). The examples/torch trainer is one. Each run is a process; its stderr goes
// to OUT/logs/.
#pragma once
#include <string>

#include "lang/grid.h"
#include "ablate/journal.h"
#include "ablate/workload.h"

namespace opal {

class ExternalWorkload {
 public:
  ExternalWorkload(std::string command, const WorkloadOptions& opts, std::string out_dir);
  std::string describe() const;
  // Writes the cell's spec to OUT/cells/NAME.opal (what --spec names).
  void write_cell(const GridCellSpec& c) const;
  // Runs the trainer for `r` (its hparams and seed are set); fills status, curve, final loss.
  RunRecord run(const GridCellSpec& c, RunRecord r) const;

 private:
  std::string command_, out_dir_;
  WorkloadOptions opts_;
};

}  // namespace opal
