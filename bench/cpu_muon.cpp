// CPU Muon step (the seed paper's variant: EMA momentum, bias correction, Newton-Schulz with the
// per-step coefficients in fp32, sqrt(max(1, rows/cols)) scale) over the four matrices of one
// GPT-2 block, Opal vs the same math hand-written over Eigen, measured in the same run. Also
// Opal's amortized SOAP-10 step on the two 768 x 768 matrices of a block. A benchmark, not a test.
//   cmake --build build --target bench_cpu_muon && ./build/bench/bench_cpu_muon
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "support/eigen.h"

#include "driver/build.h"
#include "runtime/optimizer.h"

#include "timing.h"

namespace {
using opal::bench::median_ms;
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

const double kYou[5][3] = {
    {4.0848, -6.8946, 2.9270}, {3.9505, -6.3029, 2.6377}, {3.7418, -5.5913, 2.3037}, {2.8769, -3.1427, 1.2046}, {2.8366, -3.0525, 1.2012}};
}  // namespace

int main() {
  std::vector<std::vector<int64_t>> shapes = {{2304, 768}, {768, 768}, {3072, 768}, {768, 3072}};
  std::vector<std::vector<float>> w, g;
  std::vector<opal::ParamDesc> params;
  double flops = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    size_t n = size_t(shapes[i][0] * shapes[i][1]);
    w.emplace_back(n, 0.01f);
    g.emplace_back(n);
    for (size_t k = 0; k < n; ++k) g.back()[k] = float((k * 2654435761u) % 1000) * 1e-6f - 5e-4f;
    params.push_back({"blocks.0.w" + std::to_string(i), shapes[i], w[i].data(), g[i].data()});
    double a = double(std::min(shapes[i][0], shapes[i][1])), b = double(std::max(shapes[i][0], shapes[i][1]));
    flops += 5 * (2 * a * a * b + 2 * a * a * a + 2 * a * a * b);  // gram, A^2, B X per step
  }
  opal::Optimizer opt(opal::build_executable(opal::SpecRef{"paper_muon", "", ""}), params);
  opt.set_hparam("warmup", 0);
  opt.step();
  double t_opal = median_ms([&] { opt.step(); }, 5);

  // the same math by hand over Eigen: momentum, bias correction, NS on the wide orientation
  std::vector<MatF> m;
  for (auto& s : shapes) m.push_back(MatF::Zero(s[0], s[1]));
  int t = 0;
  auto hand = [&] {
    ++t;
    for (size_t i = 0; i < shapes.size(); ++i) {
      Eigen::Map<MatF> G(g[i].data(), shapes[i][0], shapes[i][1]), W(w[i].data(), shapes[i][0], shapes[i][1]);
      m[i] = 0.9f * m[i] + 0.1f * G;
      MatF X = m[i] / float(1 - std::pow(0.9, t));
      bool tall = X.rows() > X.cols();
      if (tall) X.transposeInPlace();
      X /= X.norm() + 1e-8f;
      for (auto& c : kYou) {
        MatF A = X * X.transpose();
        MatF B = float(c[1]) * A + float(c[2]) * A * A;
        X = float(c[0]) * X + B * X;
      }
      if (tall) X.transposeInPlace();
      float scale = std::sqrt(std::max(1.0f, float(shapes[i][0]) / float(shapes[i][1])));
      W -= 7.7e-3f * (scale * X + 0.1f * W);
    }
  };
  hand();
  double t_hand = median_ms(hand, 5);
  std::printf("Muon (paper variant), 4 matrices of a GPT-2 block (7.1M params), %d threads:\n", Eigen::nbThreads());
  std::printf("  opal %.1f ms/step (%.1f GFLOP/s)   hand-written Eigen %.1f ms/step   ratio opal/hand %.2f\n", t_opal, flops / t_opal * 1e-6, t_hand,
              t_opal / t_hand);

  // SOAP-10 on two 768 x 768 matrices: amortized over a refresh period
  std::vector<std::vector<float>> w2(2, std::vector<float>(768 * 768, 0.01f)), g2(2, std::vector<float>(768 * 768));
  for (auto& gg : g2)
    for (size_t k = 0; k < gg.size(); ++k) gg[k] = float((k * 40503u) % 977) * 1e-6f - 5e-4f;
  opal::Optimizer soap(opal::build_executable(opal::SpecRef{"paper_soap10", "", ""}),
                       {{"blocks.0.a", {768, 768}, w2[0].data(), g2[0].data()}, {"blocks.0.b", {768, 768}, w2[1].data(), g2[1].data()}});
  soap.set_hparam("warmup", 0);
  for (int i = 0; i < 10; ++i) soap.step();  // past the step-1 refresh
  auto a = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) soap.step();  // 9 plain steps and one refresh
  double amortized = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count() / 10;
  double plain = median_ms([&] { soap.step(); }, 5);  // steps 21..25: no refresh
  std::printf("SOAP-10 (paper variant), 2 x 768x768: %.1f ms/step amortized, %.1f ms/step without refresh\n", amortized, plain);
  return 0;
}
