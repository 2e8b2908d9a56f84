// The Newton-Schulz family (Muon, AdaMuon, NorMuon), PSGD and the seed paper's Figure 1 against
// naive references (see matrix_reference.h).
#include "runtime/diagnostics.h"
#include "tests/numerics/matrix_reference.h"

using namespace opal::testing;
using namespace opal::testing::matrix;
using M = Eigen::MatrixXd;

TEST_SUITE("numerics") {

TEST_CASE("paper_muon and paper_muon_lookahead: MW muon.py (per-step coefficients, fp32)") {
  for (double lam : {0.0, 0.1}) {
    Paper h{7.704e-3, 0.1, 0.9, 0, 1};
    auto hp = h.hp();
    hp.erase("b2");
    hp.erase("every");
    if (lam > 0) hp["b3"] = lam;
    double err = compare_run(lam > 0 ? "paper_muon_lookahead" : "paper_muon", kAllShapes, hp, [&](const ParamCase& p) -> RefStep {
      auto m = std::make_shared<M>(M::Zero(p.rows(), p.cols()));
      return [=](const M& G, const M& W, int t) {
        *m = h.b1 * *m + (1 - h.b1) * G;
        M c = ((1 - lam) * *m + lam * G) / (1 - std::pow(h.b1, t));
        M u = ref_ns(c, true, 1e-8) * std::sqrt(std::max(1.0, double(p.rows()) / double(p.cols())));
        return M(h.lr_at(t) * (u + h.wd * W));
      };
    });
    CHECK(err < 1e-4);
  }
}

TEST_CASE("paper_adamuon, _b1b1, _factored: MW adamuon.py (variance of NS(m_hat))") {
  for (int variant = 0; variant < 3; ++variant) {
    Paper h{3.12e-4, 3.162, 0.968, variant == 1 ? 0.968 : 0.99, 1};
    auto hp = h.hp();
    hp.erase("every");
    if (variant == 1) hp.erase("b2");
    const char* spec = variant == 0 ? "paper_adamuon" : variant == 1 ? "paper_adamuon_b1b1" : "paper_adamuon_factored";
    double err = compare_run(spec, kAllShapes, hp, [&](const ParamCase& p) -> RefStep {
      auto m = std::make_shared<M>(M::Zero(p.rows(), p.cols()));
      auto v = std::make_shared<M>(M::Zero(p.rows(), p.cols()));
      auto fr = std::make_shared<FactoredRef>();
      return [=](const M& G, const M& W, int t) {
        *m = h.b1 * *m + (1 - h.b1) * G;
        M O = ref_ns(*m / (1 - std::pow(h.b1, t)), true, 1e-8) * std::sqrt(std::max(1.0, double(p.rows()) / double(p.cols())));
        M vh;
        if (variant == 2) {
          vh = fr->update(O, h.b2, t);
        } else {
          *v = h.b2 * *v + (1 - h.b2) * O.cwiseProduct(O);
          vh = *v / (1 - std::pow(h.b2, t));
        }
        M u = O.array() / (vh.array().sqrt() + 1e-8);
        return M(h.lr_at(t) * (u + h.wd * W));
      };
    });
    CHECK(err < 1e-4);
  }
}

TEST_CASE("muon (Keller Jordan) and muon_moonlight: bf16 Newton-Schulz, Nesterov") {
  // bf16 results depend on the summation order inside each matmul, so the comparison is
  // within bf16 rounding: 1e-2 relative (seen: 1.9e-3; 1.1e-2 against the per-op rounding of
  // the iteration before ns_steps).
  const double lr = 0.02, b1 = 0.95, wd = 0.01;
  for (bool moon : {false, true}) {
    double err = compare_run(moon ? "muon_moonlight" : "muon", kAllShapes, {{"lr", lr}, {"b1", b1}, {"wd", wd}}, [&](const ParamCase& p) -> RefStep {
      auto m = std::make_shared<M>(M::Zero(p.rows(), p.cols()));
      return [=](const M& G, const M& W, int) {
        *m = b1 * *m + (1 - b1) * G;
        M c = (1 - b1) * G + b1 * *m;
        M O = ref_ns_bf16(c, 1e-7);
        double scale = moon ? 0.2 * std::sqrt(double(std::max(p.rows(), p.cols()))) : std::sqrt(std::max(1.0, double(p.rows()) / double(p.cols())));
        return M(lr * (O * scale + wd * W));
      };
    });
    CHECK(err < 1e-2);
  }
}

TEST_CASE("adamuon: Algorithm 1 of the AdaMuon paper") {
  const double lr = 1e-3, b1 = 0.95, eps = 1e-8, wd = 0.1;
  double err = compare_run("adamuon", kAllShapes, {{"lr", lr}, {"b1", b1}, {"eps", eps}, {"wd", wd}}, [&](const ParamCase& p) -> RefStep {
    auto st = std::make_shared<std::array<M, 2>>(std::array<M, 2>{M::Zero(p.rows(), p.cols()), M::Zero(p.rows(), p.cols())});
    return [=](const M& G, const M& W, int) {
      auto& [Mom, V] = *st;
      Mom = b1 * Mom + G;
      M O = ref_ns(sgnm(Mom), false, 1e-7);
      V = b1 * V + (1 - b1) * O.cwiseProduct(O);
      M Oh = O.array() / (V.array().sqrt() + eps);
      double gamma = 0.2 * std::sqrt(double(p.rows() * p.cols())) / (Oh.norm() + 1e-8);
      return M(lr * (gamma * Oh + wd * W));
    };
  });
  CHECK(err < 1e-4);
}

TEST_CASE("normuon: the official code (row-wise second moment, norm kept, cautious decay)") {
  const double lr = 0.02, b1 = 0.95, b2 = 0.95, eps = 1e-10, wd = 0.05;
  double err = compare_run("normuon", kAllShapes, {{"lr", lr}, {"b1", b1}, {"b2", b2}, {"eps", eps}, {"wd", wd}}, [&](const ParamCase& p) -> RefStep {
    auto st = std::make_shared<std::pair<M, Eigen::VectorXd>>(M::Zero(p.rows(), p.cols()), Eigen::VectorXd::Zero(p.rows()));
    return [=](const M& G, const M& W, int) {
      auto& [m, v] = *st;
      m = b1 * m + (1 - b1) * G;
      M c = (1 - b1) * G + b1 * m;
      M O = ref_ns_bf16(c, 1e-7);
      v = b2 * v + (1 - b2) * O.array().square().rowwise().mean().matrix();
      M Oh = O.array().colwise() / (v.array().sqrt() + eps);
      Oh *= O.norm() / (Oh.norm() + eps);
      M u = Oh * std::sqrt(std::max(1.0, double(p.rows()) / double(p.cols())));
      M mask = (u.array() * W.array() >= 0).cast<double>();
      return M(lr * (u + wd * W.cwiseProduct(mask)));
    };
  });
  // bf16 Newton-Schulz, then a per-row normalization that magnifies rows of small norm
  CHECK(err < 3e-2);
}

}  // TEST_SUITE

TEST_SUITE("numerics") {

// The seed paper's Figure 1 (left): the singular-value spread max/mean of the update is ~1 for
// Muon, larger for SOAP, largest for Adam. Gradients: a fixed low-rank signal with a decaying
// spectrum plus noise, as real layers have; weight decay off so the update is the direction.
// The documented counter-based generator (randn_prelude, support/half.h), written out again:
// the tensor's stream id is splitmix64(FNV-1a(name) ^ splitmix64(seed + golden)) (seed 0), the
// key of element e at step t splitmix64(splitmix64(id + t * golden) ^ e); two 24-bit uniforms
// from it, Box-Muller in float.
uint64_t ref_mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
float ref_randn(const std::string& name, int t, int64_t e) {
  const uint64_t golden = 0x9e3779b97f4a7c15ull;
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  const uint64_t id = ref_mix(h ^ ref_mix(0 + golden));
  const uint64_t x = ref_mix(ref_mix(id + uint64_t(t) * golden) ^ uint64_t(e));
  float u1 = (float(x >> 40) + 0.5f) / 16777216.0f, u2 = (float(x & 0xffffffull) + 0.5f) / 16777216.0f;
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.28318530717958647692f * u2);
}

// psgd_jax's _norm_lower_bound
double ref_nlb(M A) {
  double s = A.cwiseAbs().maxCoeff();
  if (s == 0) return 0;
  A /= s;
  Eigen::Index i, j;
  double v0 = A.cwiseAbs2().colwise().sum().maxCoeff(&i), v1 = A.cwiseAbs2().rowwise().sum().maxCoeff(&j);
  if (v0 > v1) {
    Eigen::RowVectorXd x = A.col(i).transpose() * A;
    return s * (x / x.norm() * A.transpose()).norm();
  }
  Eigen::VectorXd x = A * A.row(j).transpose();
  return s * (A.transpose() * (x / x.norm())).norm();
}

TEST_CASE("paper_psgd: MW psgd.py (Kronecker factors fitted every step), in the reference's (in, out) layout") {
  Paper h{2.64e-4, 1e-3, 0.968, 0, 1};
  auto hp = h.hp();
  hp.erase("b2");
  hp.erase("every");
  double err = compare_run(
      "paper_psgd", kAllShapes, hp,
      [&](const ParamCase& p) -> RefStep {
        const int64_t m = p.cols(), n = p.rows();  // fan_in, fan_out
        auto st = std::make_shared<std::array<M, 3>>(std::array<M, 3>{M::Zero(m, n), M::Identity(m, m), M::Identity(n, n)});
        return [=](const M& Gt, const M& Wt, int t) {
          auto& [mu, Q1, Q2] = *st;
          mu = h.b1 * mu + (1 - h.b1) * Gt.transpose();
          M Mm = mu / (1 - std::pow(h.b1, t));
          M V(m, n);  // drawn in Opal's (out, in) element order
          for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < m; ++j) V(j, i) = ref_randn(p.name, t, i * m + j);
          M Gh = Mm + 3.4526698e-4 * Mm.cwiseAbs().mean() * V;
          M B = Q1.triangularView<Eigen::Upper>().transpose().solve(V);
          B = Q2.triangularView<Eigen::Upper>().solve<Eigen::OnTheRight>(B);
          M A = Q1 * Gh * Q2.transpose();
          const double tiny = 1.1754944e-38;
          M T1 = A * A.transpose(), T2 = B * B.transpose();
          M T1b = A.transpose() * A, T2b = B.transpose() * B;
          M nQ1 = Q1 - 0.1 / (ref_nlb(T1 + T2) + tiny) * M((T1 - T2).triangularView<Eigen::Upper>()) * Q1;
          M nQ2 = Q2 - 0.1 / (ref_nlb(T1b + T2b) + tiny) * M((T1b - T2b).triangularView<Eigen::Upper>()) * Q2;
          Q1 = nQ1;
          Q2 = nQ2;
          M P = Q1.transpose() * Q1 * Mm * Q2.transpose() * Q2;
          double rms = std::sqrt(P.squaredNorm() / double(P.size()));
          M u = P / std::max(1.0, rms / 1.1);
          return M(h.lr_at(t) * (u.transpose() + h.wd * Wt));
        };
      },
      11, true);
  // nlb picks the row or column of largest norm: conditioned gradients keep that argmax
  // away from fp32 ties (on random gradients the two implementations agree to ~3e-4)
  CHECK(err < 1e-4);
}

TEST_CASE("the diagnostics' singular values are those a matrix was built from, wide or tall; a NaN update has none") {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> n01(0, 1);
  for (auto [r, c] : {std::pair<int64_t, int64_t>{6, 9}, {9, 6}}) {
    const int64_t k = std::min(r, c);
    M U = M::NullaryExpr(r, r, [&] { return n01(rng); }).householderQr().householderQ();
    M V = M::NullaryExpr(c, c, [&] { return n01(rng); }).householderQr().householderQ();
    M S = M::Zero(r, c);
    for (int64_t i = 0; i < k; ++i) S(i, i) = 3.0 / double(1 + i);
    M A = U * S * V.transpose();
    std::vector<float> before(size_t(r * c)), after(size_t(r * c), 0.f);
    for (int64_t i = 0; i < r * c; ++i) before[size_t(i)] = float(A(i / c, i % c));  // row-major
    opal::UpdateStats st = opal::update_stats(before.data(), after.data(), r, c, true);
    double mean = 0;
    for (int64_t i = 0; i < k; ++i) mean += 3.0 / double(1 + i) / double(k);
    CHECK(st.sv_max == doctest::Approx(3.0).epsilon(1e-6));
    CHECK(st.sv_mean == doctest::Approx(mean).epsilon(1e-6));
    CHECK(st.update_rms == doctest::Approx(std::sqrt(A.squaredNorm() / double(r * c))).epsilon(1e-6));
  }
  std::vector<float> before(12, 1.f), after(12, 0.f);
  before[5] = std::numeric_limits<float>::quiet_NaN();
  opal::UpdateStats st = opal::update_stats(before.data(), after.data(), 3, 4, true);
  CHECK(std::isnan(st.sv_max));
  CHECK(std::isnan(st.sv_ratio));
  CHECK(opal::to_json_lines({st}).find("sv_") == std::string::npos);
}

TEST_CASE("Figure 1 ordering: singular-value spread of the update, Muon < SOAP < Adam") {
  const int64_t R = 64, C = 128;
  const int steps = 40;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> n01(0, 1);
  M U = M::NullaryExpr(R, R, [&] { return n01(rng); }).householderQr().householderQ();
  M V = M::NullaryExpr(C, C, [&] { return n01(rng); }).householderQr().householderQ();
  M S = M::Zero(R, C);
  for (int64_t k = 0; k < R; ++k) S(k, k) = 10.0 / double(1 + k);
  M signal = U * S * V.transpose();
  Trace tr = make_trace({{"blocks.0.w", {R, C}}}, steps, 5);
  for (auto& g : tr.g.at("blocks.0.w")) {
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < C; ++j) g[i * C + j] = float(signal(i, j) * 0.1 + 0.05 * n01(rng));
  }
  auto spread = [&](const std::string& spec) {
    opal::ReplayRequest req;
    req.spec.spec = spec;
    req.steps = steps;
    req.hparams = {{"wd", 0}, {"warmup", 0}, {"total", 1000}};
    req.init.tensors["blocks.0.w"] = {{R, C}, tr.w0.at("blocks.0.w")};
    for (int s = 0; s < steps; ++s) req.grads.tensors["blocks.0.w@" + std::to_string(s + 1)] = {{R, C}, tr.g.at("blocks.0.w")[s]};
    std::vector<opal::UpdateStats> stats;
    req.diagnostics = &stats;
    opal::replay(req);
    REQUIRE(stats.size() == size_t(steps));
    double mean = 0;
    for (int s = steps - 10; s < steps; ++s) {
      CHECK(stats[s].step == s + 1);
      CHECK(stats[s].update_rms > 0);
      mean += stats[s].sv_ratio / 10;
    }
    MESSAGE(spec << ": max/mean singular value of the update, last 10 steps: " << mean);
    return mean;
  };
  double muon = spread("paper_muon"), soap = spread("paper_soap10"), adam = spread("paper_adam");
  CHECK(muon < 1.5);
  CHECK(soap > muon);
  CHECK(adam > soap);
}

}  // TEST_SUITE
