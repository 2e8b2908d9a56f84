// A deterministic trajectory any backend can run through copies (read_param / write_grad):
// the same starting values and the same parameter-dependent gradients on every device, so two
// optimizers can be compared after N steps (tests/unit/backend_test, tests/gpu).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
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

// Bits, not values: NaNs compare equal when their bits are.
inline std::vector<uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  if (!v.empty()) std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
  return b;
}

// What one step under a non-finite policy did, read through copies: the bits of every parameter
// and state slot after it, the step counts, the events (described) and the error it threw, if any.
struct PolicyStep {
  std::map<std::string, std::vector<uint32_t>> bits;
  int64_t steps = 0;
  std::vector<int64_t> counts;
  std::vector<std::string> events;
  std::string error;
  bool operator==(const PolicyStep&) const = default;
};

// Where o stands: its parameters, state, step counts (each parameter's too) and last events.
inline PolicyStep state_of(Optimizer& o, std::string error = "") {
  PolicyStep r;
  r.error = std::move(error);
  r.steps = o.step_count();
  for (const auto& e : o.nonfinite_events()) r.events.push_back(describe(e) + " -> " + e.action);
  for (size_t k = 0; k < o.num_params(); ++k) {
    const std::string& n = o.param_name(k);
    r.bits[n] = bits_of(o.read_param(n));
    for (const auto& s : o.slots(n)) r.bits[n + "." + s] = bits_of(o.read_state(n, s));
    r.counts.push_back(o.step_count(n));
  }
  return r;
}

// One step of o, and what it did.
inline PolicyStep outcome_of_step(Optimizer& o) {
  std::string error;
  try {
    o.step();
    o.sync();
  } catch (const std::exception& e) {
    error = e.what();
  }
  return state_of(o, error);
}

// Two steps of the trajectory, then policy `p` and a step whose gradient is the trajectory's but
// for element `at` of parameter `bad`, which is `value`.
inline PolicyStep step_with(Optimizer& o, NonFinitePolicy p, const std::string& bad, size_t at, float value) {
  run_steps(o, 2);
  o.set_nonfinite_policy(p);
  for (size_t k = 0; k < o.num_params(); ++k) {
    const std::string& n = o.param_name(k);
    std::vector<float> w = o.read_param(n), g(w.size());
    for (size_t i = 0; i < w.size(); ++i) g[i] = 0.3f * w[i] + std::sin(0.37f * float(i));
    if (n == bad) g[at] = value;
    o.write_grad(n, g);
  }
  return outcome_of_step(o);
}

// A first step under policy `p` that moves element 5 of every (f16) parameter from 65000 up by
// more than 520 (a gradient of -1 under a learning rate that large): a finite f32 value that
// overflows f16's 65504 when stored.
inline PolicyStep overflow_with(Optimizer& o, NonFinitePolicy p) {
  for (size_t k = 0; k < o.num_params(); ++k) {
    const std::string& n = o.param_name(k);
    std::vector<float> w(o.read_param(n).size(), 1.f);
    w[5] = 65000.f;
    o.write_param(n, w);
    o.write_grad(n, std::vector<float>(w.size(), -1.f));
  }
  o.set_nonfinite_policy(p);
  return outcome_of_step(o);
}

}  // namespace opal::testing
