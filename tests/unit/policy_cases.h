// The non-finite policies' outcomes on a backend against the CPU's, read through copies
// (tests/unit/backend_test on the device-like backend, tests/gpu on CUDA).
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "driver/build.h"
#include "runtime/optimizer.h"
#include "tests/unit/trajectory.h"

namespace opal::testing {

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

// Specs whose new f16 value overflows its storage: stored in place (an elementwise route) or
// staged (a matrix route). Each, under raise, skip and zero, on the optimizer `make` builds and
// on the CPU; `agree` compares the two outcomes.
inline void overflow_cases(const std::function<std::unique_ptr<Optimizer>(const char* spec, const std::vector<ParamDesc>&)>& make,
                           const std::function<void(const PolicyStep&, const PolicyStep&)>& agree) {
  for (const char* spec : {"optimizer o(lr = 1000) {\n  other: scale(lr)\n}\n", "optimizer o(lr = 10000) {\n  matrix: ns -> scale(lr)\n}\n"})
    for (NonFinitePolicy p : {NonFinitePolicy::Raise, NonFinitePolicy::Skip, NonFinitePolicy::Zero}) {
      INFO(spec << ", policy " << nonfinite_policy_name(p));
      const std::vector<ParamDesc> ps = {{"w", {4, 8}, nullptr, nullptr, false, ParamRole::None, DType::F16, DType::F16}};
      auto dev = make(spec, ps);
      auto cpu = make_optimizer(compile_spec(SpecRef{spec, "", ""}), ps);
      const PolicyStep a = overflow_with(*dev, p), b = overflow_with(*cpu, p);
      agree(a, b);
      REQUIRE(a.events.size() == 1u);
      CHECK(a.events[0].find("the new parameter value holds NaN or Inf") != std::string::npos);
    }
}

// Update diagnostics of two steps of `a` and `b` (muon on both, say): the same parameters and
// steps, update RMS within `tol` relative (0: equal).
inline void diagnostics_agree(Optimizer& a, Optimizer& b, double tol) {
  for (Optimizer* o : {&a, &b}) {
    init_params(*o);
    o->set_diagnostics(true);
    run_steps(*o, 2);
  }
  REQUIRE(a.diagnostics().size() == b.diagnostics().size());
  for (size_t i = 0; i < b.diagnostics().size(); ++i) {
    const UpdateStats &x = a.diagnostics()[i], &y = b.diagnostics()[i];
    CHECK(x.param == y.param);
    CHECK(x.step == y.step);
    if (tol == 0) {
      CHECK(x.update_rms == y.update_rms);
      CHECK(bits_of({float(x.sv_max)}) == bits_of({float(y.sv_max)}));
    } else {
      CHECK(x.update_rms == doctest::Approx(y.update_rms).epsilon(tol));
    }
    CHECK(x.update_rms > 0);
  }
}

}  // namespace opal::testing
