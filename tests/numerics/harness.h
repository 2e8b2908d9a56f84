// Numerics harness: random parameters and gradients, a replay through Opal, and comparison
// against naive references written from algorithms.md (not from the generated code).
#pragma once
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "driver/replay.h"

namespace opal::testing {

struct ParamCase {
  std::string name;
  std::vector<int64_t> shape;
  int64_t rows() const { return shape.size() >= 2 ? shape[0] : 1; }
  int64_t cols() const { return numel() / rows(); }
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

struct Trace {
  std::vector<ParamCase> params;
  std::map<std::string, std::vector<float>> w0;
  std::map<std::string, std::vector<std::vector<float>>> g;  // [step-1]
  int steps = 0;
};

inline Trace make_trace(std::vector<ParamCase> params, int steps, uint64_t seed = 7) {
  Trace t{std::move(params), {}, {}, steps};
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  for (const auto& p : t.params) {
    auto& w = t.w0[p.name];
    for (int64_t i = 0; i < p.numel(); ++i) w.push_back(n(rng));
    for (int s = 0; s < steps; ++s) {
      std::vector<float> g(p.numel());
      for (auto& x : g) x = n(rng) * 0.1f + 0.02f;  // a mean so momentum has something to track
      t.g[p.name].push_back(std::move(g));
    }
  }
  return t;
}

// Runs Opal through opal::replay; returns final parameters (NAME) and states (NAME/slot).
inline std::map<std::string, std::vector<float>> run_opal(const std::string& spec, const Trace& t, std::map<std::string, double> hp = {}) {
  ReplayRequest req;
  req.spec.spec = spec;
  req.steps = t.steps;
  req.hparams = std::move(hp);
  for (const auto& p : t.params) {
    req.init.tensors[p.name] = {p.shape, t.w0.at(p.name)};
    for (int s = 0; s < t.steps; ++s) req.grads.tensors[p.name + "@" + std::to_string(s + 1)] = {p.shape, t.g.at(p.name)[s]};
  }
  std::map<std::string, std::vector<float>> out;
  for (auto& [k, v] : replay(req).tensors) out[k] = std::move(v.values);
  return out;
}

// max |a - b| / max |b|: relative to the tensor's scale, robust to elements near zero.
inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 1e30;
  double num = 0, den = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - double(b[i])));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return num / den;
}

inline float sgn(float x) { return float((x > 0) - (x < 0)); }

// optax warmup_cosine_decay_schedule(0, peak, warmup, total) at count k.
inline double warmup_cosine(double k, double peak, double warmup, double total) {
  if (k < warmup) return peak * k / warmup;
  double c = std::min(k - warmup, total - warmup);
  return peak * 0.5 * (1 + std::cos(M_PI * c / (total - warmup)));
}

}  // namespace opal::testing
