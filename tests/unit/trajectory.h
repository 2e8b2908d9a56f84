// A deterministic trajectory any backend can run through copies (read_param / write_grad):
// the same starting values and the same parameter-dependent gradients on every device, so two
// optimizers can be compared after N steps (tests/unit/backend_test, tests/gpu).
#pragma once
#include <cmath>
#include <vector>

#include "runtime/optimizer.h"

namespace opal::testing {

// w[i] = 0.5 sin(0.7 i + 1.3 p) for the p-th parameter.
inline void init_params(Optimizer& o) {
  for (size_t p = 0; p < o.num_params(); ++p) {
    std::vector<float> w(o.read_param(o.param_name(p)).size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.5f * std::sin(0.7f * float(i) + 1.3f * float(p));
    o.write_param(o.param_name(p), w);
  }
}

// `steps` steps with g = 0.3 w + sin(0.37 i + 0.11 t (p + 1)): a quadratic pull plus a drift.
inline void run_steps(Optimizer& o, int steps) {
  for (int t = 0; t < steps; ++t) {
    for (size_t p = 0; p < o.num_params(); ++p) {
      const std::string& n = o.param_name(p);
      std::vector<float> w = o.read_param(n), g(w.size());
      for (size_t i = 0; i < w.size(); ++i) g[i] = 0.3f * w[i] + std::sin(0.37f * float(i) + 0.11f * float(t) * float(p + 1));
      o.write_grad(n, g);
    }
    o.step();
  }
  o.sync();
}

}  // namespace opal::testing
