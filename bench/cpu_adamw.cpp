// CPU AdamW step over the seed paper's GPT-2 parameter set (162M params, untied head), Opal's
// fused kernel vs a hand-written fused C++ loop measured in the same run. A benchmark, not a test.
//   cmake --build build --target bench_cpu_adamw && ./build/bench/bench_cpu_adamw
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "driver/build.h"
#include "runtime/optimizer.h"

int main() {
  // GPT-2 small shapes as in algorithms.md §2: embeddings, 12 blocks, head.
  std::vector<std::vector<int64_t>> shapes = {{50257, 768}, {256, 768}, {768}, {50257, 768}};
  for (int l = 0; l < 12; ++l)
    for (auto s : std::vector<std::vector<int64_t>>{{2304, 768}, {768, 768}, {3072, 768}, {768, 3072}, {768}, {768}}) shapes.push_back(s);
  std::vector<std::vector<float>> w, g;
  std::vector<opal::ParamDesc> params;
  size_t total = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    size_t n = 1;
    for (auto d : shapes[i]) n *= d;
    total += n;
    w.emplace_back(n, 0.01f);
    g.emplace_back(n, 0.001f);
  }
  for (size_t i = 0; i < shapes.size(); ++i) params.push_back({"p" + std::to_string(i), shapes[i], w[i].data(), g[i].data()});
  opal::Optimizer opt(opal::build_executable(opal::SpecRef{"adamw", "", ""}), params);
  auto time_it = [](auto&& f) {
    std::vector<double> ts;
    for (int i = 0; i < 8; ++i) {
      auto a = std::chrono::steady_clock::now();
      f();
      ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
    }
    std::sort(ts.begin(), ts.end());
    return ts[ts.size() / 2];
  };
  for (int i = 0; i < 2; ++i) opt.step();
  double t_opal = time_it([&] { opt.step(); });
  // hand-written reference loop (same math, same bytes)
  std::vector<std::vector<float>> m(w.size()), v(w.size());
  for (size_t i = 0; i < w.size(); ++i) m[i].assign(w[i].size(), 0.f), v[i].assign(w[i].size(), 0.f);
  int t = 0;
  auto hand = [&] {
    ++t;
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
    const float c1 = float(1 - std::pow(0.9, t)), c2 = float(1 - std::pow(0.999, t));
    for (size_t p = 0; p < w.size(); ++p) {
      float *W = w[p].data(), *G = g[p].data(), *M = m[p].data(), *V = v[p].data();
      long long n = (long long)w[p].size();
#pragma omp parallel for simd schedule(static)
      for (long long e = 0; e < n; ++e) {
        float mm = b1 * M[e] + (1 - b1) * G[e], vv = b2 * V[e] + (1 - b2) * G[e] * G[e];
        M[e] = mm, V[e] = vv;
        W[e] -= lr * ((mm / c1) / (std::sqrt(vv / c2) + eps) + wd * W[e]);
      }
    }
  };
  hand();
  double t_hand = time_it(hand);
  double bytes = double(total) * 4 * 7;  // read w g m v, write w m v
  std::printf("params %.1fM in %zu tensors\n", total / 1e6, shapes.size());
  std::printf("opal adamw   %8.1f ms  %6.1f GB/s\n", t_opal, bytes / t_opal / 1e6);
  std::printf("hand loop    %8.1f ms  %6.1f GB/s\n", t_hand, bytes / t_hand / 1e6);
  std::printf("opal / hand  %8.2fx time\n", t_opal / t_hand);
}
