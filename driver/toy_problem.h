// A built-in problem for `opal run`: multi-output linear regression y = W x + b with Gaussian
// inputs and a fixed random teacher, mean squared error, analytic gradients. Seeded, so every
// optimizer sees the same data and the same initial weights.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <map>

#include "driver/build.h"

namespace opal {

struct ToyConfig {
  int in = 64, out = 32, batch = 128, steps = 200, log_every = 20;
  uint64_t seed = 1;
};

struct ToyResult {
  std::vector<std::pair<int, double>> losses;  // (step, loss before that step's update)
  double final_loss = 0;
};

// Trains with an optimizer built from `spec`; `on_log(step, loss)` is called every log_every.
ToyResult run_toy(const SpecRef& spec, const ToyConfig& cfg, const std::map<std::string, double>& hparams,
                  const std::function<void(int, double)>& on_log = {});

}  // namespace opal
