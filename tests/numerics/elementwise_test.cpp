// Every elementwise stdlib optimizer, replayed for 50 steps on matrices and vectors, against a
// straightforward float implementation of algorithms.md.
#include <doctest/doctest.h>

#include <functional>

#include "tests/numerics/harness.h"

using namespace opal::testing;

namespace {

constexpr int kSteps = 50;
constexpr double kTol = 1e-5;

const std::vector<ParamCase> kShapes = {{"w_square", {6, 6}}, {"w_wide", {3, 11}}, {"w_tall", {9, 4}}, {"b", {7}}};

// A reference updates one parameter given its gradient at step t (1-based); `state` holds its
// named slots, created on first use.
using Ref = std::function<void(const ParamCase&, std::vector<float>& w, const std::vector<float>& g, int t,
                               std::map<std::string, std::vector<float>>& state)>;

std::map<std::string, std::vector<float>> run_ref(const Trace& tr, const Ref& ref) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& p : tr.params) {
    std::vector<float> w = tr.w0.at(p.name);
    std::map<std::string, std::vector<float>> st;
    for (int t = 1; t <= tr.steps; ++t) ref(p, w, tr.g.at(p.name)[t - 1], t, st);
    out[p.name] = w;
    for (auto& [k, v] : st) out[p.name + "/" + k] = v;
  }
  return out;
}

// Compares every tensor the reference produced.
void compare(const std::map<std::string, std::vector<float>>& opal, const std::map<std::string, std::vector<float>>& ref, double tol = kTol) {
  for (const auto& kv : ref) {
    const std::string& k = kv.first;  // named: clang 14 lambdas (INFO) cannot capture bindings
    INFO("tensor " << k);
    REQUIRE(opal.count(k));
    CHECK(rel_err(opal.at(k), kv.second) <= tol);
  }
}

std::vector<float>& slot(std::map<std::string, std::vector<float>>& st, const std::string& k, size_t n) {
  auto& v = st[k];
  if (v.empty()) v.assign(n, 0.f);
  return v;
}

// Hyperparameters are doubles, as in torch: `1 - b2` is computed in double, then used in float.
inline float one_minus(double b) { return float(1.0 - b); }

// Adam/AdamW family: l2 (coupled) or decoupled weight decay, bias correction and zero-init toggles.
Ref adam_ref(float lr, double b1d, double b2d, float eps, float wd, bool decoupled, bool bc = true, bool zi = true) {
  return [=](const ParamCase& p, std::vector<float>& w, const std::vector<float>& g0, int t, auto& st) {
    const float b1 = float(b1d), b2 = float(b2d);
    auto& m = slot(st, "momentum.m", w.size());
    auto& v = slot(st, "adapt.v", w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      float g = decoupled ? g0[i] : g0[i] + wd * w[i];
      if (t == 1 && !zi) {
        m[i] = g;
        v[i] = g * g;
      }
      m[i] = b1 * m[i] + one_minus(b1d) * g;
      v[i] = b2 * v[i] + one_minus(b2d) * g * g;
      float mh = bc ? m[i] / float(1 - std::pow(b1d, t)) : m[i];
      float vh = bc ? v[i] / float(1 - std::pow(b2d, t)) : v[i];
      float u = mh / (std::sqrt(vh) + eps);
      w[i] -= decoupled ? lr * (u + wd * w[i]) : lr * u;
    }
  };
}

}  // namespace

TEST_SUITE("numerics") {
TEST_CASE("adamw matches torch.optim.AdamW's formula") {
  Trace tr = make_trace(kShapes, kSteps);
  compare(run_opal("adamw", tr, {{"lr", 1e-2}, {"wd", 0.1}}), run_ref(tr, adam_ref(1e-2f, 0.9, 0.999, 1e-8f, 0.1f, true)));
}

TEST_CASE("adam matches torch.optim.Adam's formula (coupled L2)") {
  Trace tr = make_trace(kShapes, kSteps);
  compare(run_opal("adam", tr, {{"lr", 1e-2}, {"wd", 0.05}}), run_ref(tr, adam_ref(1e-2f, 0.9, 0.999, 1e-8f, 0.05f, false)));
}

TEST_CASE("adam with every bias-correction and zero-init combination") {
  Trace tr = make_trace(kShapes, kSteps);
  for (bool bc : {true, false})
    for (bool zi : {true, false}) {
      std::string spec = "optimizer a(lr = 1e-2, b1 = 0.9, b2 = 0.99) { other: momentum(b1, bias_correction = " + std::string(bc ? "true" : "false") +
                         ", zero_init = " + (zi ? "true" : "false") + ") -> adapt(b2, 1e-8, bias_correction = " + (bc ? "true" : "false") +
                         ", zero_init = " + (zi ? "true" : "false") + ") -> scale(lr) }";
      INFO("bias_correction " << bc << " zero_init " << zi);
      compare(run_opal(spec, tr), run_ref(tr, adam_ref(1e-2f, 0.9, 0.99, 1e-8f, 0.f, true, bc, zi)));
    }
}

TEST_CASE("sgd matches torch.optim.SGD, plain and Nesterov") {
  Trace tr = make_trace(kShapes, kSteps);
  for (bool nesterov : {false, true}) {
    float lr = 0.05f, b = 0.9f, damp = 0.1f, wd = 0.01f;
    Ref ref = [=](const ParamCase&, std::vector<float>& w, const std::vector<float>& g0, int t, auto& st) {
      auto& m = slot(st, "heavy_ball.m", w.size());
      for (size_t i = 0; i < w.size(); ++i) {
        float d = g0[i] + wd * w[i];
        m[i] = t == 1 ? d : b * m[i] + (1 - damp) * d;
        float u = nesterov ? d + b * m[i] : m[i];
        w[i] -= lr * u;
      }
    };
    INFO("nesterov " << nesterov);
    compare(run_opal("sgd", tr, {{"lr", lr}, {"b1", b}, {"dampening", damp}, {"wd", wd}, {"nesterov", nesterov ? 1 : 0}}), run_ref(tr, ref));
  }
}

TEST_CASE("signum and tiger: the sign of an EMA momentum") {
  Trace tr = make_trace(kShapes, kSteps);
  for (auto c : {std::tuple{"signum", 0.9f, 0.1f}, std::tuple{"tiger", 0.945f, 0.01f}}) {
    const char* name = std::get<0>(c);
    const float b = std::get<1>(c), wd = std::get<2>(c);
    float lr = 1e-3f;
    Ref ref = [=](const ParamCase&, std::vector<float>& w, const std::vector<float>& g, int, auto& st) {
      auto& m = slot(st, "momentum.m", w.size());
      for (size_t i = 0; i < w.size(); ++i) {
        m[i] = b * m[i] + (1 - b) * g[i];
        w[i] -= lr * (sgn(m[i]) + wd * w[i]);
      }
    };
    INFO(name);
    compare(run_opal(name, tr, {{"lr", lr}, {"wd", wd}}), run_ref(tr, ref));
  }
}

TEST_CASE("lion matches Chen et al.") {
  Trace tr = make_trace(kShapes, kSteps);
  float lr = 1e-3f, b1 = 0.9f, b2 = 0.99f, wd = 0.1f;
  Ref ref = [=](const ParamCase&, std::vector<float>& w, const std::vector<float>& g, int, auto& st) {
    auto& m = slot(st, "momentum.m", w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      float c = b1 * m[i] + (1 - b1) * g[i];
      w[i] -= lr * (sgn(c) + wd * w[i]);
      m[i] = b2 * m[i] + (1 - b2) * g[i];
    }
  };
  compare(run_opal("lion", tr, {{"lr", lr}, {"wd", wd}}), run_ref(tr, ref));
}

TEST_CASE("cautious_adamw masks AdamW's direction by agreement with g") {
  Trace tr = make_trace(kShapes, kSteps);
  float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
  Ref ref = [=](const ParamCase&, std::vector<float>& w, const std::vector<float>& g, int t, auto& st) {
    const float c1 = one_minus(0.9), c2 = one_minus(0.999);
    auto& m = slot(st, "momentum.m", w.size());
    auto& v = slot(st, "adapt.v", w.size());
    std::vector<float> u(w.size());
    double kept = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      m[i] = b1 * m[i] + c1 * g[i];
      v[i] = b2 * v[i] + c2 * g[i] * g[i];
      u[i] = (m[i] / float(1 - std::pow(0.9, t))) / (std::sqrt(v[i] / float(1 - std::pow(0.999, t))) + eps);
      kept += u[i] * g[i] > 0;
    }
    for (size_t i = 0; i < w.size(); ++i) {
      float mask = u[i] * g[i] > 0;
      w[i] -= lr * (u[i] * mask * float(w.size() / (kept + 1)) + wd * w[i]);
    }
  };
  compare(run_opal("cautious_adamw", tr, {{"lr", lr}}), run_ref(tr, ref));
}

TEST_CASE("adafactor_factored: factored second moment on matrices, full on vectors") {
  Trace tr = make_trace(kShapes, kSteps);
  float lr = 1e-2f, b2 = 0.999f, eps = 1e-30f, wd = 0.01f;
  const float c2 = one_minus(0.999);
  Ref ref = [=](const ParamCase& p, std::vector<float>& w, const std::vector<float>& g, int, auto& st) {
    if (p.shape.size() < 2) {
      auto& v = slot(st, "adapt.v", w.size());
      for (size_t i = 0; i < w.size(); ++i) {
        v[i] = b2 * v[i] + c2 * g[i] * g[i];
        w[i] -= lr * (g[i] / std::sqrt(v[i] + eps) + wd * w[i]);
      }
      return;
    }
    int64_t R = p.rows(), C = p.cols();
    auto& r = slot(st, "adapt_factored.r", R);
    auto& c = slot(st, "adapt_factored.c", C);
    // eps is added to g^2 before factoring (the paper's eps1, optax)
    for (int64_t i = 0; i < R; ++i) {
      float s = 0;
      for (int64_t j = 0; j < C; ++j) s += g[i * C + j] * g[i * C + j] + eps;
      r[i] = b2 * r[i] + c2 * s;
    }
    for (int64_t j = 0; j < C; ++j) {
      float s = 0;
      for (int64_t i = 0; i < R; ++i) s += g[i * C + j] * g[i * C + j] + eps;
      c[j] = b2 * c[j] + c2 * s;
    }
    double total = 0;
    for (float x : r) total += x;
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < C; ++j) {
        float V = r[i] * (c[j] / float(total));
        w[i * C + j] -= lr * (g[i * C + j] / std::sqrt(V) + wd * w[i * C + j]);
      }
  };
  compare(run_opal("adafactor_factored", tr, {{"lr", lr}, {"wd", wd}}), run_ref(tr, ref));
}

// ---- the paper family: the reference harness (MW train.py) ----

namespace {
const std::vector<ParamCase> kPaperParams = {{"h.0.mlp.weight", {6, 10}}, {"h.0.attn.weight", {8, 5}}, {"embed.weight", {12, 4}},
                                             {"head.weight", {5, 4}},     {"h.0.ln.bias", {6}},        {"h.0.norm.scale", {6}}};

struct PaperHP {
  float lr, wd, b1, b2, warmup = 10, total = 40;
};

// The non-matrix groups: Adam(0.9, 0.99) at lr 0.01 with wd 0.001 except on bias/embed/norm.
void paper_other_step(const ParamCase& p, std::vector<float>& w, const std::vector<float>& g, int t, std::map<std::string, std::vector<float>>& st,
                      const PaperHP& h) {
  bool decay = p.name.find("bias") == std::string::npos && p.name.find("embed") == std::string::npos && p.name.find("norm") == std::string::npos;
  float lr = float(warmup_cosine(t - 1, 0.01, h.warmup, h.total)), wd = decay ? 0.001f : 0.f;
  auto& m = slot(st, "momentum.m", w.size());
  auto& v = slot(st, "adapt.v", w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    m[i] = 0.9f * m[i] + 0.1f * g[i];
    v[i] = 0.99f * v[i] + 0.01f * g[i] * g[i];
    float u = (m[i] / float(1 - std::pow(0.9, t))) / (std::sqrt(v[i] / float(1 - std::pow(0.99, t))) + 1e-8f);
    w[i] -= lr * (u + wd * w[i]);
  }
}

bool is_main(const ParamCase& p) {
  return p.shape.size() == 2 && p.name.find("embed") == std::string::npos && p.name.find("head") == std::string::npos;
}

// Wraps a main-group direction function into a full harness reference.
Ref paper_ref(
    const PaperHP& h,
    std::function<void(const ParamCase&, const std::vector<float>& g, int t, std::map<std::string, std::vector<float>>&, std::vector<float>& u)>
        dir) {
  return [=](const ParamCase& p, std::vector<float>& w, const std::vector<float>& g, int t, auto& st) {
    if (!is_main(p)) return paper_other_step(p, w, g, t, st, h);
    std::vector<float> u(w.size());
    dir(p, g, t, st, u);
    float lr = float(warmup_cosine(t - 1, h.lr, h.warmup, h.total));
    for (size_t i = 0; i < w.size(); ++i) w[i] -= lr * (u[i] + h.wd * w[i]);
  };
}

std::map<std::string, double> hp_map(const PaperHP& h) { return {{"warmup", h.warmup}, {"total", h.total}}; }
}  // namespace

TEST_CASE("paper_adam, paper_adam_b1b1: MW adam.py under the reference harness") {
  Trace tr = make_trace(kPaperParams, kSteps);
  for (bool b1b1 : {false, true}) {
    PaperHP h{1e-3f, 1.0f, 0.9f, b1b1 ? 0.9f : 0.99f};
    Ref ref = paper_ref(h, [=](const ParamCase&, const std::vector<float>& g, int t, auto& st, std::vector<float>& u) {
      auto& m = slot(st, "momentum.m", g.size());
      auto& v = slot(st, "adapt.v", g.size());
      for (size_t i = 0; i < g.size(); ++i) {
        m[i] = h.b1 * m[i] + (1 - h.b1) * g[i];
        v[i] = h.b2 * v[i] + (1 - h.b2) * g[i] * g[i];
        u[i] = (m[i] / float(1 - std::pow(double(h.b1), t))) / (std::sqrt(v[i] / float(1 - std::pow(double(h.b2), t))) + 1e-8f);
      }
    });
    INFO("b1b1 " << b1b1);
    compare(run_opal(b1b1 ? "paper_adam_b1b1" : "paper_adam", tr, hp_map(h)), run_ref(tr, ref));
  }
}

TEST_CASE("paper_adam_factored: the reference's factored v, computed in its (in, out) layout") {
  Trace tr = make_trace(kPaperParams, kSteps);
  PaperHP h{1e-3f, 1.0f, 0.9f, 0.99f};
  Ref ref = paper_ref(h, [=](const ParamCase& p, const std::vector<float>& g, int t, auto& st, std::vector<float>& u) {
    // X = g^T: m = fan_in = our cols, n = fan_out = our rows
    const int64_t n = p.rows(), m = p.cols();
    auto X = [&](int64_t i_in, int64_t j_out) { return g[j_out * m + i_in]; };
    auto& mom = slot(st, "momentum.m", g.size());
    auto& r = slot(st, "ref.r", m);  // per fan_in: mean over fan_out (axis 1)
    auto& c = slot(st, "ref.c", n);  // per fan_out: mean over fan_in (axis 0)
    for (int64_t i = 0; i < m; ++i) {
      float s = 0;
      for (int64_t j = 0; j < n; ++j) s += X(i, j) * X(i, j);
      r[i] = h.b2 * r[i] + (1 - h.b2) * (s / float(n));
    }
    for (int64_t j = 0; j < n; ++j) {
      float s = 0;
      for (int64_t i = 0; i < m; ++i) s += X(i, j) * X(i, j);
      c[j] = h.b2 * c[j] + (1 - h.b2) * (s / float(m));
    }
    double rsum = 0;
    for (float x : r) rsum += x;
    for (size_t k = 0; k < g.size(); ++k) mom[k] = h.b1 * mom[k] + (1 - h.b1) * g[k];
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        float V = float(n / rsum) * r[i] * c[j] / float(1 - std::pow(double(h.b2), t));
        size_t k = j * m + i;  // back to (out, in)
        u[k] = (mom[k] / float(1 - std::pow(double(h.b1), t))) / (std::sqrt(V) + 1e-8f);
      }
  });
  auto opal = run_opal("paper_adam_factored", tr, hp_map(h));
  auto want = run_ref(tr, ref);
  for (const auto& p : kPaperParams) {
    INFO(p.name);
    CHECK(rel_err(opal.at(p.name), want.at(p.name)) <= kTol);
    if (is_main(p)) {  // the state: our rows-slot is the reference's c, our cols-slot its r
      CHECK(rel_err(opal.at(p.name + "/adapt_factored_ref.r"), want.at(p.name + "/ref.c")) <= kTol);
      CHECK(rel_err(opal.at(p.name + "/adapt_factored_ref.c"), want.at(p.name + "/ref.r")) <= kTol);
    }
  }
}

TEST_CASE("paper_signum and paper_signum_lookahead: MW signum.py") {
  Trace tr = make_trace(kPaperParams, kSteps);
  for (float l : {0.f, 0.3f}) {
    PaperHP h{1.77e-4f, 3.162f, 0.9f, 0.f};
    Ref ref = paper_ref(h, [=](const ParamCase&, const std::vector<float>& g, int, auto& st, std::vector<float>& u) {
      auto& m = slot(st, "momentum.m", g.size());
      for (size_t i = 0; i < g.size(); ++i) {
        m[i] = h.b1 * m[i] + (1 - h.b1) * g[i];
        u[i] = sgn((1 - l) * m[i] + l * g[i]);
      }
    });
    auto hp = hp_map(h);
    if (l > 0) hp["b3"] = l;
    INFO("lookahead " << l);
    compare(run_opal(l > 0 ? "paper_signum_lookahead" : "paper_signum", tr, hp), run_ref(tr, ref));
  }
}

TEST_CASE("the paper harness gives lr = 0 on the first update") {
  Trace tr = make_trace({{"h.0.mlp.weight", {4, 4}}}, 1);
  auto out = run_opal("paper_adam", tr);
  CHECK(out.at("h.0.mlp.weight") == tr.w0.at("h.0.mlp.weight"));
  CHECK(rel_err(out.at("h.0.mlp.weight/momentum.m"), std::vector<float>(16, 0.f)) > 0);  // the state absorbed g1
}
}
