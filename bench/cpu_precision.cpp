// CPU AdamW over the seed paper's GPT-2 parameter set (162M params) at three byte models, each
// against this machine's memory bandwidth measured in the same run: the better of two streaming
// kernels over arrays of the parameters' size with next to no arithmetic, a += s * b (12 B per
// element) and AdamW's access pattern a, b, c += s * d (read four, write three in place, 28 B).
// Each model also runs over a set small enough to stay in cache: its rate there is the
// ceiling the arithmetic sets on this machine's cores. A benchmark, not a test.
//   f32:          w, g, m, v f32                     28 B/param (read w g m v, write w m v)
//   bf16 params:  w, g bf16, m, v f32                22 B/param
//   all bf16:     w, g, m, v bf16 (`state m: bf16`)  14 B/param
//   q8 state:     w, g bf16, m, v q8 (`state m: q8`) 10 B/param, and a scale per 256 (0.06 B)
//   cmake --build build --target bench_cpu_precision && ./build/bench/bench_cpu_precision [MODEL...]
// (MODEL: the byte models to run, e.g. `q8`; default all)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "driver/build.h"
#include "runtime/optimizer.h"

#include "timing.h"

namespace {
using opal::bench::median_ms;

// torch's AdamW, as the stdlib's `adamw`, with its moments stored as `storage`.
std::string adamw_spec(const std::string& storage) {
  return fmt::format(
      "component mom(beta = 0.9) {{\n  state m{0} = zeros\n  m = beta * m + (1 - beta) * u\n  u = m / (1 - beta ^ t)\n}}\n"
      "component var(beta = 0.999, eps = 1e-8) {{\n  state v{0} = zeros\n  v = beta * v + (1 - beta) * g * g\n"
      "  u = u / (sqrt(v / (1 - beta ^ t)) + eps)\n}}\n"
      "optimizer o(lr = 1e-3, wd = 0.01) {{\n  other: mom -> var -> decay(wd) -> scale(lr)\n}}\n",
      storage.empty() ? "" : ": " + storage);
}

// GB/s of the better of a += s * b (12 bytes per element moved) and a, b, c += s * d (28 bytes)
// over n floats, OpenMP as the kernels are.
double stream_gbs(size_t n) {
  std::vector<float> a(n, 0.f), b(n, 0.f), c(n, 0.f), d(n, 1.f);
  float *A = a.data(), *B = b.data(), *C = c.data();
  const float* D = d.data();
  auto two = [&] {
#pragma omp parallel for simd schedule(static)
    for (long long i = 0; i < (long long)n; ++i) A[i] += 1e-3f * D[i];
  };
  auto seven = [&] {
#pragma omp parallel for simd schedule(static)
    for (long long i = 0; i < (long long)n; ++i) {
      A[i] += 1e-3f * D[i];
      B[i] += 2e-3f * D[i];
      C[i] += 3e-3f * D[i];
    }
  };
  seven();
  return std::max(double(n) * 12 / median_ms(two, 7) / 1e6, double(n) * 28 / median_ms(seven, 7) / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::vector<int64_t>> shapes = {{50257, 768}, {256, 768}, {768}, {50257, 768}};
  for (int l = 0; l < 12; ++l)
    for (auto s : std::vector<std::vector<int64_t>>{{2304, 768}, {768, 768}, {3072, 768}, {768, 3072}, {768}, {768}}) shapes.push_back(s);
  size_t total = 0;
  for (const auto& s : shapes) {
    size_t n = 1;
    for (auto d : s) n *= d;
    total += n;
  }
  const double stream = stream_gbs(total);
  std::printf("params %.1fM in %zu tensors; memory bandwidth %.1f GB/s\n", double(total) / 1e6, shapes.size(), stream);
  struct Model {
    const char* name;
    opal::DType params;
    const char* storage;
    double bytes_per_param;
  };
  // The same kernels over four 256x512 tensors (0.5M parameters: at most 15 MB, in cache, and
  // large enough to run on every thread): the rate the arithmetic allows, whatever the memory
  std::vector<std::vector<int64_t>> small(4, std::vector<int64_t>{256, 512});
  const size_t small_total = 4 * 256 * 512;
  auto step_ms = [&](const Model& m, const std::vector<std::vector<int64_t>>& set, int reps) {
    std::vector<opal::ParamDesc> params;
    for (size_t i = 0; i < set.size(); ++i) {
      opal::ParamDesc p{"p" + std::to_string(i), set[i]};
      p.dtype = p.grad_dtype = m.params;
      params.push_back(p);
    }
    auto opt = opal::make_optimizer(opal::compile_spec({adamw_spec(m.storage), "", ""}), params);  // owned, zeroed memory
    for (int i = 0; i < 2; ++i) opt->step();
    return median_ms([&] { opt->step(); }, reps);
  };
  std::printf("%-12s %11s %9s %9s %13s %17s\n", "model", "", "step", "GB/s", "of bandwidth", "in-cache ceiling");
  for (const Model& m : {Model{"f32", opal::DType::F32, "", 28}, Model{"bf16 params", opal::DType::BF16, "", 22},
                         Model{"all bf16", opal::DType::BF16, "bf16", 14}, Model{"q8 state", opal::DType::BF16, "q8", 10 + 4.0 * 4 / 256}}) {
    bool wanted = argc == 1;
    for (int a = 1; a < argc; ++a) wanted |= std::string(m.name).find(argv[a]) != std::string::npos;
    if (!wanted) continue;
    const double ms = step_ms(m, shapes, 7);
    const double gbs = double(total) * m.bytes_per_param / ms / 1e6;
    const double small_ms = step_ms(m, small, 101);
    const double ceiling = double(small_total) * m.bytes_per_param / small_ms / 1e6;
    std::printf("%-12s %4.0f B/param %7.1f ms %9.1f %12.1f%% %11.1f GB/s\n", m.name, m.bytes_per_param, ms, gbs, 100 * gbs / stream, ceiling);
  }
  std::printf(
      "(in-cache ceiling: the same step over 0.5M parameters that stay in cache, as GB/s of the same bytes per\n"
      " parameter: where it is below the bandwidth, the arithmetic, not memory, bounds the step)\n");
}
