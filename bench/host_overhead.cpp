// Host overhead of a step: the time the runtime spends around trivially small kernels.
//   cmake --build build --target bench_host_overhead && build/bench/bench_host_overhead
// Two models: the 149 tensors of GPT-2 small with every dimension divided by 64 (wte 785 x 12,
// c_attn 12 x 36, ...: the kernels do almost nothing), and 2000 tiny vectors of 4 elements.
// Each optimizer steps them `--steps` times after a warm-up; the figure is microseconds per
// step (the median of 5 repeats), so it measures routing, guards, scalars and launches.
// It builds against the runtime before and after the executable-description rewrite (the
// constructor differs), so that both can be measured from one source.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#if __has_include("driver/build.h")
#include "driver/build.h"
#define OPAL_BUILD(spec) opal::build_executable(opal::SpecRef{spec, "", ""})
#else
#include "runtime/optimizer.h"
#define OPAL_BUILD(spec) \
  opal::SpecRef { spec, "", "" }
#endif
#include "runtime/optimizer.h"

namespace {

std::vector<opal::ParamDesc> gpt2_scaled() {
  const int64_t d = 768 / 64, v = 50257 / 64, ctx = 1024 / 64;
  std::vector<opal::ParamDesc> p = {{"wte", {v, d}}, {"wpe", {ctx, d}}};
  for (int b = 0; b < 12; ++b) {
    const std::string h = "h." + std::to_string(b) + ".";
    for (const char* ln : {"ln_1", "ln_2"}) {
      p.push_back({h + ln + ".weight", {d}});
      p.push_back({h + ln + ".bias", {d}});
    }
    p.push_back({h + "attn.c_attn.weight", {d, 3 * d}});
    p.push_back({h + "attn.c_attn.bias", {3 * d}});
    p.push_back({h + "attn.c_proj.weight", {d, d}});
    p.push_back({h + "attn.c_proj.bias", {d}});
    p.push_back({h + "mlp.c_fc.weight", {d, 4 * d}});
    p.push_back({h + "mlp.c_fc.bias", {4 * d}});
    p.push_back({h + "mlp.c_proj.weight", {4 * d, d}});
    p.push_back({h + "mlp.c_proj.bias", {d}});
  }
  p.push_back({"ln_f.weight", {d}});
  p.push_back({"ln_f.bias", {d}});
  p.push_back({"lm_head.weight", {v, d}});
  return p;  // 149 tensors
}

std::vector<opal::ParamDesc> tiny(int n) {
  std::vector<opal::ParamDesc> p;
  for (int i = 0; i < n; ++i) p.push_back({"p" + std::to_string(i), {4}});
  return p;
}

double us_per_step(const char* spec, const std::vector<opal::ParamDesc>& params, int steps) {
  opal::Optimizer opt(OPAL_BUILD(spec), params);
  for (size_t i = 0; i < opt.num_params(); ++i)
    for (float& g : opt.grad(opt.param_name(i))) g = 1e-3f;
  for (int s = 0; s < 10; ++s) opt.step();
  std::vector<double> runs;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) opt.step();
    runs.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / steps);
  }
  std::sort(runs.begin(), runs.end());
  return runs[2];
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 200;
  std::string only;  // --only NAME: one optimizer
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--only")) only = argv[i + 1];
  }
  const auto gpt = gpt2_scaled();
  const auto small = tiny(2000);
  std::printf("%-14s %-22s %12s\n", "optimizer", "model", "us/step");
  for (const char* spec : {"adamw", "lion", "adafactor", "soap"}) {
    if (!only.empty() && only != spec) continue;
    std::printf("%-14s %-22s %12.1f\n", spec, "gpt2/64 (149 tensors)", us_per_step(spec, gpt, spec == std::string("soap") ? steps / 10 : steps));
    if (spec != std::string("soap")) std::printf("%-14s %-22s %12.1f\n", spec, "2000 x [4]", us_per_step(spec, small, steps));
  }
  return 0;
}
