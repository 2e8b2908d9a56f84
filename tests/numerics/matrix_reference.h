// The shared part of the matrix optimizers' numerics tests (matrix_test.cpp: the Newton-Schulz
// family and PSGD; matrix_basis_test.cpp: the eigenbasis family): naive Eigen references written
// from algorithms.md, the shapes, and compare_run, which steps Opal and a reference side by side.
//
// Every matrix optimizer of the stdlib against a naive Eigen reference written from
// algorithms.md (in the reference code's own layout where it differs from Opal's), through
// opal::replay for 30 steps on square, wide and tall matrices, with refresh periods that
// trigger several basis refreshes. The comparison is on the displacement W - W0 (the sum of
// the updates), relative to its largest entry.
//
// Eigenbases are canonical in Opal (runtime/cpu/linalg.h); the references build the same
// canonical basis independently: ascending eigenvalues; the numerical null space (|lambda| <=
// n eps_f32 max|lambda|) spanned by the Gram-Schmidt orthonormalization of its projections of
// e_1, e_2, ...; other eigenvectors signed so their largest-magnitude entry is positive.
#pragma once
#include <doctest/doctest.h>

#include "support/eigen.h"
#include <functional>
#include <limits>
#include <numeric>

#include "support/bf16.h"
#include "tests/numerics/harness.h"

namespace opal::testing::matrix {

using M = Eigen::MatrixXd;

inline constexpr int kSteps = 30;
inline const std::vector<ParamCase> kShapes = {{"blocks.0.sq", {24, 24}}, {"blocks.0.wide", {16, 40}}, {"blocks.0.tall", {40, 16}}};
inline const std::vector<ParamCase> kBigShapes = {{"blocks.0.wide", {64, 256}}, {"blocks.0.tall", {256, 64}}};
// square, wide and tall, small and GPT-like aspect ratios
inline const std::vector<ParamCase> kAllShapes = {
    {"blocks.0.sq", {24, 24}}, {"blocks.0.wide", {16, 40}}, {"blocks.0.tall", {40, 16}}, {"blocks.1.wide", {64, 256}}, {"blocks.1.tall", {256, 64}}};

inline M to_mat(const std::vector<float>& v, int64_t r, int64_t c) {
  M m(r, c);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) m(i, j) = v[i * c + j];
  return m;
}
inline std::vector<float> to_vec(const M& m) {
  std::vector<float> v(m.size());
  for (int64_t i = 0; i < m.rows(); ++i)
    for (int64_t j = 0; j < m.cols(); ++j) v[i * m.cols() + j] = float(m(i, j));
  return v;
}
inline M sgnm(const M& x) {
  return x.unaryExpr([](double v) { return double((v > 0) - (v < 0)); });
}

// the canonical eigenbasis (see the file comment), eigenvectors as columns
inline M ref_eigh(const M& S, bool descending = false) {
  const int64_t n = S.rows();
  Eigen::SelfAdjointEigenSolver<M> es(0.5 * (S + S.transpose()));
  Eigen::VectorXd lam = es.eigenvalues();
  M V = es.eigenvectors();
  double tol = double(n) * double(std::numeric_limits<float>::epsilon()) * lam.cwiseAbs().maxCoeff();
  std::vector<int64_t> null;
  for (int64_t i = 0; i < n; ++i)
    if (std::abs(lam(i)) <= tol) null.push_back(i);
  if (!null.empty()) {
    M N(n, null.size());
    for (size_t k = 0; k < null.size(); ++k) N.col(k) = V.col(null[k]);
    M P = N * N.transpose();
    std::vector<Eigen::VectorXd> basis;
    for (int64_t j = 0; j < n && basis.size() < null.size(); ++j) {
      Eigen::VectorXd x = P.col(j);
      for (int rep = 0; rep < 2; ++rep)
        for (const auto& b : basis) x -= b.dot(x) * b;
      if (x.norm() > 1e-6) basis.push_back(x / x.norm());
    }
    REQUIRE(basis.size() == null.size());
    for (size_t k = 0; k < null.size(); ++k) V.col(null[k]) = basis[k];
  }
  for (int64_t i = 0; i < n; ++i) {
    if (std::abs(lam(i)) <= tol) continue;
    Eigen::Index a;
    V.col(i).cwiseAbs().maxCoeff(&a);
    if (V(a, i) < 0) V.col(i) *= -1;
  }
  if (descending) V = V.rowwise().reverse().eval();
  return V;
}
inline Eigen::VectorXd ref_eigvals(const M& S) {
  const int64_t n = S.rows();
  Eigen::SelfAdjointEigenSolver<M> es(0.5 * (S + S.transpose()));
  Eigen::VectorXd lam = es.eigenvalues();
  double tol = double(n) * double(std::numeric_limits<float>::epsilon()) * lam.cwiseAbs().maxCoeff();
  for (int64_t i = 0; i < n; ++i) lam(i) = lam(i) > 0 ? std::max(lam(i) - tol, 0.0) : std::min(lam(i) + tol, 0.0);
  return lam;
}
// V f(lambda) V^T with the canonical eigenbasis and soft-thresholded eigenvalues
inline M ref_matfn(const M& S, const std::function<double(double)>& f) {
  M V = ref_eigh(S);
  Eigen::VectorXd lam = ref_eigvals(S);
  return V * lam.unaryExpr(f).asDiagonal() * V.transpose();
}

inline const double kKeller[3] = {3.4445, -4.7750, 2.0315};
inline const double kYou[5][3] = {
    {4.0848, -6.8946, 2.9270}, {3.9505, -6.3029, 2.6377}, {3.7418, -5.5913, 2.3037}, {2.8769, -3.1427, 1.2046}, {2.8366, -3.0525, 1.2012}};

// algorithms.md 3.1: transpose to wide, normalize by ||X||_F + eps, quintic steps, transpose back
inline M ref_ns(M X, bool you, double eps, int steps = 5) {
  bool tall = X.rows() > X.cols();
  if (tall) X.transposeInPlace();
  X /= X.norm() + eps;
  for (int k = 0; k < steps; ++k) {
    const double* c = you ? kYou[std::min(k, 4)] : kKeller;
    M A = X * X.transpose();
    M B = c[1] * A + c[2] * A * A;
    X = c[0] * X + B * X;
  }
  if (tall) X.transposeInPlace();
  return X;
}

// The same in bfloat16 as Opal defines it (exec::NsSteps, torch's addmm form of Keller Jordan's
// iteration): X rounded, each product accumulated in f32 with its epilogue (c A A + b A,
// B X + a X) and rounded once.
using MF = Eigen::MatrixXf;
inline MF bf(const MF& x) {
  return x.unaryExpr([](float v) { return opal::round_bf16(v); });
}
inline M ref_ns_bf16(const M& X0, double eps) {
  MF X = bf(X0.cast<float>());
  bool tall = X.rows() > X.cols();
  if (tall) X.transposeInPlace();
  float nrm = 0;
  for (int64_t i = 0; i < X.size(); ++i) nrm += X.data()[i] * X.data()[i];
  X = bf(X / (std::sqrt(nrm) + float(eps)));
  for (int k = 0; k < 5; ++k) {
    MF A = bf(X * X.transpose());
    MF AA = A * A;  // (in f32: each product is rounded once, after its epilogue)
    MF B = bf(float(kKeller[2]) * AA + float(kKeller[1]) * A);
    MF BX = B * X;
    X = bf(BX + float(kKeller[0]) * X);
  }
  if (tall) X.transposeInPlace();
  return X.cast<double>();
}

// A reference optimizer for one parameter: returns the step's decrement dW (W <- W - dW).
using RefStep = std::function<M(const M& G, const M& W, int t)>;
using RefFactory = std::function<RefStep(const ParamCase&)>;

struct Result {
  double worst = 0;
};

// Runs Opal and the reference on every shape; returns the worst relative error of W - W0.
// `conditioned` adds a fixed component with well-separated singular values to every gradient.
// Sign-based methods in an eigenbasis (SPlus) and SOAP's sorted power iteration are
// discontinuous where the basis is ill-determined: random square gradients have Kronecker
// factors with near-degenerate small eigenvalues, whose eigenvectors fp32 cannot pin down, so
// two correct implementations differ there by a sign flip. The conditioned trace keeps the
// comparison meaningful at 1e-4.
inline double compare_run(const std::string& spec, const std::vector<ParamCase>& shapes, const std::map<std::string, double>& hp,
                          const RefFactory& make, uint64_t seed = 11, bool conditioned = false) {
  Trace tr = make_trace(shapes, kSteps, seed);
  if (conditioned)
    for (const auto& p : shapes)
      for (auto& g : tr.g.at(p.name))
        for (int64_t i = 0; i < std::min(p.rows(), p.cols()); ++i) g[i * p.cols() + i] += 0.05f * float(i + 1);
  auto opal = run_opal(spec, tr, hp);
  double worst = 0;
  for (const auto& p : shapes) {
    RefStep step = make(p);
    M W0 = to_mat(tr.w0.at(p.name), p.rows(), p.cols()), W = W0;
    for (int t = 1; t <= kSteps; ++t) W -= step(to_mat(tr.g.at(p.name)[t - 1], p.rows(), p.cols()), W, t);
    M got = to_mat(opal.at(p.name), p.rows(), p.cols());
    INFO(spec << " " << p.name);
    REQUIRE(got.allFinite());
    REQUIRE(W.allFinite());
    REQUIRE((W - W0).norm() > 0);  // the optimizer moved the parameter
    double err = rel_err(to_vec(got - W0), to_vec(W - W0));
    if (err > 1e-4) MESSAGE(spec << " " << p.name << ": relative error " << err);
    worst = std::max(worst, err);
  }
  MESSAGE(spec << ": worst relative error of W - W0 over " << shapes.size() << " shapes: " << worst);
  return worst;
}

// the seed paper's harness: dW = lr(k = t-1) * (u + wd * W)
struct Paper {
  double lr, wd, b1, b2, every;
  double warmup = 3, total = 40;
  double lr_at(int t) const { return warmup_cosine(t - 1, lr, warmup, total); }
  std::map<std::string, double> hp() const {
    return {{"lr", lr}, {"wd", wd}, {"b1", b1}, {"b2", b2}, {"every", every}, {"warmup", warmup}, {"total", total}};
  }
};
inline bool refresh(int t, double every) { return t == 1 || t % int(every) == 0; }

// MW's factored variance (3.2) of X in the reference's (in, out) layout: X_mw = X^T
struct FactoredRef {
  Eigen::VectorXd r, c;  // r per fan_in (our cols), c per fan_out (our rows)
  M update(const M& X, double b2, int t) {
    M Xm = X.transpose();  // (in, out)
    const double n = double(Xm.cols());
    if (r.size() == 0) {
      r = Eigen::VectorXd::Zero(Xm.rows());
      c = Eigen::VectorXd::Zero(Xm.cols());
    }
    r = b2 * r + (1 - b2) * Xm.array().square().rowwise().mean().matrix();
    c = b2 * c + (1 - b2) * Xm.array().square().colwise().mean().transpose().matrix();
    M V = (n / r.sum()) * r * c.transpose() / (1 - std::pow(b2, t));
    return V.transpose();  // back to (out, in)
  }
};

}  // namespace opal::testing::matrix
