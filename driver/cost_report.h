// `opal cost`: the static cost of each parameter's step (compiler/exec/cost.h) and, for a
// world of several processes, the owner longest-processing-time-first gives it.
#pragma once
#include <string>
#include <vector>

#include "compiler/exec/cost.h"
#include "runtime/optimizer.h"

namespace opal {

struct ParamCost {
  std::string param;
  std::vector<int64_t> shape;
  std::string route;
  exec::StepCost cost;
  int64_t state_bytes = 0;  // its optimizer state, at each slot's storage
  int owner = 0;
};

// Each parameter's step cost as `d` routes it (no state is allocated), hyperparameters at
// `hparams` (one per d.hparams; empty: the defaults). Throws the routing's errors.
std::vector<exec::StepCost> param_costs(const exec::Description& d, const std::vector<ParamDesc>& params, const std::vector<double>& hparams);

// Every parameter of `opt` at its current hyperparameters, owners over `world` ranks.
std::vector<ParamCost> describe_costs(const Optimizer& opt, int world = 1);
std::string format_costs(const std::vector<ParamCost>& costs, int world = 1);

}  // namespace opal
