// The static cost of a step (issue 19: owners are chosen by it): what one parameter's route
// moves through memory in its kernels and computes in its library calls, per step, averaged
// over the steps its guards run on (a basis refreshed every 10 steps costs a tenth a step).
// A model to balance work by, not a timing: kernels count each buffer they read and each they
// write once; library calls count the usual flops of their dense algorithm.
#pragma once
#include <vector>

#include "compiler/exec/description.h"

namespace opal::exec {

struct StepCost {
  double kernel_bytes = 0;  // bytes the kernels read and write
  double call_flops = 0;    // floating-point operations of the library calls
  double launches = 0;      // kernel launches and library calls
  // One number to balance by: seconds on a nominal device moving 100 GB/s and computing
  // 1 TFLOP/s, plus 5 us a launch (the ratio, not the scale, decides an assignment).
  double seconds() const { return kernel_bytes / 1e11 + call_flops / 1e12 + launches * 5e-6; }
};

// The mean cost of steps 1..horizon of `route` for a parameter seen as `v` (rank `rank`),
// with hyperparameters `hparams` (the guards' inputs), its w and g stored in `param_bytes`
// bytes an element.
StepCost step_cost(const Route& route, const TensorView& v, size_t rank, const std::vector<double>& hparams, int param_bytes = 4, int horizon = 1000);

// Longest processing time first: each cost, largest first (ties: the earlier), goes to the
// rank with the least load so far (ties: the lowest rank). Deterministic, so every rank
// computes the same owners. Returns each cost's rank. `loads` (world entries, or empty for
// zeros) carries each rank's load from earlier assignments in and out, so that parameter
// groups added one by one balance together.
std::vector<int> assign_owners(const std::vector<double>& costs, int world, std::vector<double>* loads = nullptr);

}  // namespace opal::exec
