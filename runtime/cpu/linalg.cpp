// Eigen implementations of the library ops (see linalg.h).
#include "runtime/cpu/linalg.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "support/eigen.h"
#include "support/eigen_product.h"

#include "support/check.h"
#include "support/bf16.h"

namespace opal::cpu {

using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapF = Eigen::Map<MatF>;
using CMapF = Eigen::Map<const MatF>;

namespace {

// An operand in place, or (bf16) over its rounded copy kept in `keep`: no copy in fp32.
CMapF operand(const float* p, long long r, long long c, bool bf, MatF& keep) {
  if (!bf) return CMapF(p, r, c);
  keep = CMapF(p, r, c).unaryExpr([](float x) { return round_bf16(x); });
  return CMapF(keep.data(), r, c);
}

// o = op(A) op(B) (support/eigen_product.h: the same bits on any number of threads)
void product(MapF& o, const CMapF& A, bool ta, const CMapF& B, bool tb) {
  if (!ta && !tb) product_into(o, A, B);
  else if (ta && !tb) product_into(o, A.transpose(), B);
  else if (!ta && tb) product_into(o, A, B.transpose());
  else product_into(o, A.transpose(), B.transpose());
}

// y = s x, and p rounded to bf16, over n elements, on every thread (a full matrix's pass)
void scale_into(float* y, const float* x, float s, long long n) {
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (long long i = 0; i < n; ++i) y[i] = s * x[i];
}
void round_all(float* p, long long n) {
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (long long i = 0; i < n; ++i) p[i] = round_bf16(p[i]);
}

void round_out(MapF& m) { round_all(m.data(), m.size()); }

// Newton-Schulz's steps (exec::NsSteps): each product accumulated onto its scaled C by the GEMM
// itself (Eigen's C += alpha A B, as cuBLAS's alpha and beta), in f32, the result rounded to
// bf16 once when bf16. X and Y alternate between `out` and a work matrix.
void newton_schulz_steps(const exec::NsSteps& ns, const float* x, float* out, long long rows, long long cols) {
  const bool wide = rows <= cols;
  const long long k = wide ? rows : cols, n = rows * cols;
  MatF A(k, k), B(k, k), work(rows, cols);
  float* buf[2] = {out, work.data()};
  std::copy(x, x + n, out);
  int at = 0;
  for (const auto& [ka, kb, kc] : ns.coeffs) {
    const CMapF X(buf[at], rows, cols);
    MapF Y(buf[1 - at], rows, cols), a(A.data(), k, k);
    product(a, X, !wide, X, wide);  // X X^T on the wide side, X^T X when tall
    if (ns.bf16) round_all(A.data(), k * k);
    B = float(kb) * A;
    product_into(B, A, A, float(kc), true);
    if (ns.bf16) round_all(B.data(), k * k);
    scale_into(Y.data(), X.data(), float(ka), n);
    if (wide) product_into(Y, B, X, 1.f, true);
    else product_into(Y, X, B, 1.f, true);
    if (ns.bf16) round_all(Y.data(), n);
    at = 1 - at;
  }
  if (at == 1) std::copy(work.data(), work.data() + n, out);
}

}  // namespace

void matmul(const float* A, bool ta, const float* B, bool tb, long long m, long long n, long long k, bool bf16, float* C) {
  MatF keep[2];
  MapF o(C, m, n);
  product(o, operand(A, ta ? k : m, ta ? m : k, bf16, keep[0]), ta, operand(B, tb ? n : k, tb ? k : n, bf16, keep[1]), tb);
  if (bf16) round_out(o);
}

namespace {

// The canonical orthonormal basis of the null space spanned by N's columns (n x k, orthonormal):
// Gram-Schmidt of the projected unit vectors P e_0, P e_1, ... (P = N N^T) in order, skipping
// those whose residual is below 1e-6, until k are found. It depends on the subspace alone, not
// on the basis the solver returned.
//
// Since N is orthonormal, P e_j = N a_j with a_j = N^T e_j (row j of N), and inner products of
// the P e_j equal those of the a_j: the process runs in R^k on the rows of N, and the result is
// N Q. Blocks of rows are projected against the basis found so far with two matrix products
// (classical Gram-Schmidt, twice: as exact as the modified kind), then orthonormalized one by
// one within the block. Cost: O(n k^2) in matrix products, like the decomposition; the
// vector-at-a-time version was O(n^2 k) in strided dot products (minutes for n = 2048).
bool canonical_null_basis(const MatD& N, MatD& out) {
  const long long n = N.rows(), k = N.cols();
  constexpr long long kBlock = 64;
  MatD Q(k, k);  // rows: the basis found so far, in R^k
  long long got = 0;
  for (long long j0 = 0; j0 < n && got < k; j0 += kBlock) {
    const long long b = std::min(kBlock, n - j0);
    MatD X = N.middleRows(j0, b);  // candidates a_j, one per row
    for (int pass = 0; pass < 2 && got > 0; ++pass) {
      auto Qg = Q.topRows(got);
      const MatD XQ = product_of(X, Qg.transpose());
      product_into(X, XQ, Qg, -1.0, true);
    }
    const long long block_start = got;
    for (long long r = 0; r < b && got < k; ++r) {
      Eigen::RowVectorXd x = X.row(r);
      for (int pass = 0; pass < 2; ++pass)
        for (long long q = block_start; q < got; ++q) x -= x.dot(Q.row(q)) * Q.row(q);
      double nx = x.norm();
      if (nx > 1e-6) Q.row(got++) = x / nx;
    }
  }
  if (got < k) return false;
  out.resize(n, k);
  product_into(out, N, Q.transpose());
  return true;
}

}  // namespace

void canonicalize_eigh(long long n, const double* raw_values, const double* raw_vectors, bool descending, double* values, double* vectors) {
  Eigen::VectorXd lam = Eigen::Map<const Eigen::VectorXd>(raw_values, n);
  MatD V = Eigen::Map<const MatD>(raw_vectors, n, n);
  if (!lam.allFinite() || !V.allFinite()) {
    for (long long i = 0; i < n; ++i) values[i] = std::numeric_limits<double>::quiet_NaN();
    for (long long i = 0; i < n * n; ++i) vectors[i] = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  double mx = lam.cwiseAbs().maxCoeff();
  double tol = double(n) * double(std::numeric_limits<float>::epsilon()) * mx;
  // the null block is contiguous in ascending order
  long long lo = n, hi = -1;
  for (long long i = 0; i < n; ++i)
    if (std::abs(lam(i)) <= tol) {
      lo = std::min(lo, i);
      hi = std::max(hi, i);
    }
  if (hi >= lo) {
    long long k = hi - lo + 1;
    MatD B;
    if (canonical_null_basis(V.middleCols(lo, k), B)) V.middleCols(lo, k) = B;  // else (not seen in practice) keep the solver's basis
  }
  // soft threshold: noise maps to exactly 0, and the values stay continuous at the threshold
  for (long long i = 0; i < n; ++i) lam(i) = lam(i) > 0 ? std::max(lam(i) - tol, 0.0) : std::min(lam(i) + tol, 0.0);
  for (long long i = 0; i < n; ++i) {
    if (i >= lo && i <= hi) continue;
    Eigen::Index arg;
    V.col(i).cwiseAbs().maxCoeff(&arg);
    if (V(arg, i) < 0) V.col(i) = -V.col(i);
  }
  for (long long i = 0; i < n; ++i) {
    long long src = descending ? n - 1 - i : i;
    values[i] = lam(src);
    for (long long r = 0; r < n; ++r) vectors[r * n + i] = V(r, src);
  }
}

void finish_eigh_call(const exec::LibraryCall& call, long long r0, const double* raw_values, const double* raw_vectors, const double* regs,
                      float* out) {
  std::vector<double> lam(r0), V(r0 * r0);
  if (const auto* e = std::get_if<exec::Eigh>(&call.op)) {
    canonicalize_eigh(r0, raw_values, raw_vectors, e->descending, lam.data(), V.data());
    for (long long i = 0; i < r0 * r0; ++i) out[i] = float(V[i]);
    return;
  }
  const auto* ir = std::get_if<exec::InvRoot>(&call.op);
  OPAL_CHECK(ir && call.in.size() == 2 && call.in[1].reg >= 0, "finish_eigh_call of %s", exec::call_name(call.op));
  // the canonical (soft-thresholded) eigenvalues: rounding noise is exactly 0, so the large
  // multipliers of a rank-deficient factor's null space do not depend on it
  const double p = double(ir->p), eps = regs[call.in[1].reg];
  const bool damped = ir->damped;
  canonicalize_eigh(r0, raw_values, raw_vectors, false, lam.data(), V.data());
  Eigen::Map<MatD> Vm(V.data(), r0, r0);
  Eigen::VectorXd f(r0);
  for (long long i = 0; i < r0; ++i)
    f(i) = damped ? std::pow(std::max(lam[i], 0.0) + eps, -1.0 / p) : 1.0 / (std::pow(std::abs(lam[i]), 1.0 / p) + eps);
  const MatD VF = Vm * f.asDiagonal();
  MatD P(r0, r0);
  product_into(P, VF, Vm.transpose());
  MapF(out, r0, r0) = P.cast<float>();
}

void run_call(const exec::LibraryCall& call, const float* const* in, const double* regs, float* out, long long rows, long long cols) {
  auto dims = [&](size_t o) { return o < call.in.size() ? exec::dims_of(call.in[o].extent, rows, cols) : exec::Dims{}; };
  const long long r0 = dims(0).rows, c0 = dims(0).cols, r1 = dims(1).rows, c1 = dims(1).cols;
  const exec::Dims od = exec::dims_of(call.out_extent, rows, cols);
  const long long ro = od.rows, co = od.cols;
  MatF keep[2];
  const exec::CallOp& op = call.op;
  if (const auto* g = std::get_if<exec::Gemm>(&op)) {
    MapF o(out, ro, co);
    product(o, operand(in[0], r0, c0, g->bf16, keep[0]), g->ta, operand(in[1], r1, c1, g->bf16, keep[1]), g->tb);
    if (g->bf16) round_out(o);
  } else if (const auto* g = std::get_if<exec::Gram>(&op)) {  // X X^T on the wide side
    MapF o(out, ro, co);
    CMapF X = operand(in[0], rows, cols, g->bf16, keep[0]);
    product(o, X, rows > cols, X, rows <= cols);
    if (g->bf16) round_out(o);
  } else if (const auto* g = std::get_if<exec::GramApply>(&op)) {  // B X when wide, X B when tall
    MapF o(out, rows, cols);
    CMapF B = operand(in[0], r0, c0, g->bf16, keep[0]), X = operand(in[1], rows, cols, g->bf16, keep[1]);
    if (rows <= cols) product(o, B, false, X, false);
    else product(o, X, false, B, false);
    if (g->bf16) round_out(o);
  } else if (const auto* ns = std::get_if<exec::NsSteps>(&op)) {
    newton_schulz_steps(*ns, in[0], out, rows, cols);
  } else if (std::holds_alternative<exec::Eigh>(op) || std::holds_alternative<exec::InvRoot>(op)) {
    std::vector<double> lam(r0, std::numeric_limits<double>::quiet_NaN()), V(r0 * r0, std::numeric_limits<double>::quiet_NaN());
    MatD A = CMapF(in[0], r0, r0).cast<double>();
    if (A.allFinite()) {
      A = 0.5 * (A + A.transpose());
      Eigen::SelfAdjointEigenSolver<MatD> es(A);
      Eigen::Map<Eigen::VectorXd>(lam.data(), r0) = es.eigenvalues();
      Eigen::Map<MatD>(V.data(), r0, r0) = es.eigenvectors();
    }
    finish_eigh_call(call, r0, lam.data(), V.data(), regs, out);
  } else if (std::holds_alternative<exec::Qr>(op)) {
    MatD A = CMapF(in[0], r0, c0).cast<double>();
    Eigen::HouseholderQR<MatD> qr(A);
    MatD Q = qr.householderQ() * MatD::Identity(r0, c0);
    MapF(out, r0, c0) = Q.cast<float>();
  } else if (std::holds_alternative<exec::Diag>(op)) {
    for (long long i = 0; i < r0; ++i) out[i] = in[0][i * r0 + i];
  } else if (const auto* a = std::get_if<exec::Argsort>(&op)) {
    std::vector<long long> idx(r0);
    std::iota(idx.begin(), idx.end(), 0);
    const float* x = in[0];
    if (a->descending) std::stable_sort(idx.begin(), idx.end(), [&](long long i, long long j) { return x[i] > x[j]; });
    else std::stable_sort(idx.begin(), idx.end(), [&](long long i, long long j) { return x[i] < x[j]; });
    for (long long i = 0; i < r0; ++i) out[i] = float(idx[i]);
  } else if (std::holds_alternative<exec::PermuteRows>(op) || std::holds_alternative<exec::PermuteCols>(op)) {
    const bool by_rows = std::holds_alternative<exec::PermuteRows>(op);
    const float* x = in[0];  // never the output buffer: plan_memory reuses a buffer only after its last reader
    const float* idx = in[1];
    for (long long i = 0; i < r0; ++i)
      for (long long j = 0; j < c0; ++j) {
        const float fi = by_rows ? idx[i] : float(i), fj = !by_rows ? idx[j] : float(j);
        // an index that is not one (NaN, out of range) gives NaN rather than a wild read
        const bool ok = fi >= 0 && fi < float(r0) && fj >= 0 && fj < float(c0);
        out[i * c0 + j] = ok ? x[(long long)fi * c0 + (long long)fj] : std::numeric_limits<float>::quiet_NaN();
      }
  } else if (std::holds_alternative<exec::TriSolveLeft>(op)) {  // Q^-T X, Q upper triangular (only its upper triangle is read)
    MatD Q = CMapF(in[0], r0, c0).cast<double>(), X = CMapF(in[1], r1, c1).cast<double>();
    MatD Y = Q.triangularView<Eigen::Upper>().transpose().solve(X);
    MapF(out, ro, co) = Y.cast<float>();
  } else if (std::holds_alternative<exec::TriSolveRight>(op)) {  // X Q^-1
    MatD X = CMapF(in[0], r0, c0).cast<double>(), Q = CMapF(in[1], r1, c1).cast<double>();
    MatD Y = Q.triangularView<Eigen::Upper>().solve<Eigen::OnTheRight>(X);
    MapF(out, ro, co) = Y.cast<float>();
  } else if (std::holds_alternative<exec::NormLowerBound>(op)) {
    // psgd_jax's _norm_lower_bound: scale by max|A|, take the row or column of largest norm,
    // one step of power iteration from it
    MatD A = CMapF(in[0], r0, c0).cast<double>();
    if (!A.allFinite()) {  // (maxCoeff's answer would depend on where the NaN is)
      out[0] = std::numeric_limits<float>::quiet_NaN();
      return;
    }
    double s = A.cwiseAbs().maxCoeff();
    if (!(s > 0)) {
      out[0] = 0.f;
      return;
    }
    A /= s;
    Eigen::Index i, j;
    double v0 = A.cwiseAbs2().colwise().sum().maxCoeff(&i);
    double v1 = A.cwiseAbs2().rowwise().sum().maxCoeff(&j);
    double r;
    if (v0 > v1) {
      Eigen::RowVectorXd x = A.col(i).transpose() * A;
      r = (x / x.norm() * A.transpose()).norm();
    } else {
      Eigen::VectorXd x = A * A.row(j).transpose();
      r = (A.transpose() * (x / x.norm())).norm();
    }
    out[0] = float(s * r);
  } else {
    OPAL_CHECK(false, "no CPU implementation of %s", exec::call_name(op));
  }
}

std::vector<double> singular_values(const double* a, long long rows, long long cols) {
  Eigen::Map<const MatD> A(a, rows, cols);
  const MatD G = rows <= cols ? product_of(A, A.transpose()) : product_of(A.transpose(), A);
  Eigen::SelfAdjointEigenSolver<MatD> es(G, Eigen::EigenvaluesOnly);
  std::vector<double> sv(G.rows());
  for (long long i = 0; i < G.rows(); ++i) sv[i] = std::sqrt(std::max(es.eigenvalues()[G.rows() - 1 - i], 0.0));
  return sv;
}

}  // namespace opal::cpu
