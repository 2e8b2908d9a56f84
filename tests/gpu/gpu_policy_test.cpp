// The non-finite policies and update diagnostics on CUDA against the CPU (part of the GPU
// tests: tests/gpu/gpu_test.cpp holds their main and the skip where no device can be had).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "driver/build.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"
#include "tests/unit/policy_cases.h"
#include "tests/unit/trajectory.h"

using namespace opal;
using opal::testing::diagnostics_agree;
using opal::testing::init_params;
using opal::testing::overflow_cases;
using opal::testing::PolicyStep;
using opal::testing::step_with;

namespace {

const Device kCuda{DeviceKind::Cuda, 0};

// Two steps' outcomes agree: the same events, error and step count; in every buffer the same
// elements non-finite (a NaN's bits may differ between backends) and the others within `tol`
// relative (0: equal).
void agree(const PolicyStep& a, const PolicyStep& b, double tol) {
  CHECK(a.events == b.events);
  CHECK(a.error == b.error);
  CHECK(a.steps == b.steps);
  REQUIRE(a.bits.size() == b.bits.size());
  for (const auto& [name, x] : a.bits) {
    INFO(name);
    const std::vector<uint32_t>& y = b.bits.at(name);
    REQUIRE(x.size() == y.size());
    size_t differ = 0;
    double worst = 0, scale = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      float u, v;
      std::memcpy(&u, &x[i], 4);
      std::memcpy(&v, &y[i], 4);
      if (std::isnan(u) || std::isnan(v) || std::isinf(u) || std::isinf(v)) {
        differ += std::isnan(u) != std::isnan(v) || std::isinf(u) != std::isinf(v) || (std::isinf(u) && u != v);
        continue;
      }
      worst = std::max(worst, std::abs(double(u) - double(v)));
      scale = std::max(scale, std::abs(double(v)));
    }
    CHECK(differ == 0);
    CHECK(worst <= tol * std::max(scale, 1e-30));
  }
}

}  // namespace

// The non-finite policies on the device: the checked kernels' flags (atomicOr into a word per
// tensor), the copies that undo a step and the zeroed gradient all in device memory, and the
// outcome equal to the CPU's to the bit: elementwise and matrix routes, 16-bit parameters of
// odd length, q8 state, and f16 parameters whose new value overflows in place or staged.
TEST_CASE("non-finite policies and update diagnostics step, undo and report as on the CPU") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  struct Case {
    const char* spec;
    DType dt;
    const char* state;
    const char* bad;
    float value;
  };
  for (const Case& c : {Case{"adamw", DType::F32, "", "big.w", nan}, Case{"muon", DType::F32, "", "h.0.w", inf},
                        Case{"adamw", DType::BF16, "bf16", "odd.b", nan}, Case{"lion", DType::F16, "q8", "big.w", -inf}})
    for (NonFinitePolicy p : {NonFinitePolicy::Off, NonFinitePolicy::Raise, NonFinitePolicy::Skip, NonFinitePolicy::Zero}) {
      INFO(c.spec << ", " << exec::dtype_name(c.dt) << " parameters, policy " << nonfinite_policy_name(p));
      std::vector<ParamDesc> ps = {{"big.w", {300, 128}}, {"h.0.w", {64, 48}}, {"h.0.b", {48}}, {"odd.b", {5}}};
      for (auto& d : ps) d.dtype = d.grad_dtype = c.dt;
      auto gpu = make_optimizer(compile_spec(SpecRef{c.spec, "", "", c.state}), ps, kCuda);
      auto cpu = make_optimizer(compile_spec(SpecRef{c.spec, "", "", c.state}), ps);
      init_params(*gpu);
      init_params(*cpu);
      const size_t at = std::string(c.bad) == "odd.b" ? 3 : 1000;
      const PolicyStep a = step_with(*gpu, p, c.bad, at, c.value), b = step_with(*cpu, p, c.bad, at, c.value);
      agree(a, b, std::string(c.spec) == "muon" ? 2e-2 : 0.0);  // bf16 Newton-Schulz, as above
      CHECK(a.events.size() == (p == NonFinitePolicy::Off ? 0u : 1u));
      if (p == NonFinitePolicy::Raise) CHECK(a.error.find("[NonFinite]") != std::string::npos);
    }
  overflow_cases(
      [](const char* spec, const std::vector<ParamDesc>& ps) {
        return make_optimizer(compile_spec(SpecRef{spec, "", ""}), ps, kCuda);
      },
      [](const PolicyStep& a, const PolicyStep& b) { agree(a, b, 1e-5); });
  const std::vector<ParamDesc> ps = {{"h.0.w", {64, 48}}, {"wide.w", {24, 96}}, {"h.0.b", {48}}};
  auto gpu = make_optimizer(compile_spec(SpecRef{"muon", "", ""}), ps, kCuda);
  auto cpu = make_optimizer(compile_spec(SpecRef{"muon", "", ""}), ps);
  diagnostics_agree(*gpu, *cpu, 1e-3);
}
