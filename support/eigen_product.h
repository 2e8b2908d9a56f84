// Matrix products whose bits do not depend on the OpenMP team size.
//
// Eigen splits a large product among the calling thread's team (Parallelizer.h), and the split
// decides which micro-kernels sum each element: the same Muon step, SOAP refresh or workload
// gradient came out with other bits on one thread than on two (a grid run with `--jobs 4`, each
// run on one thread, against the same run alone). Here the split is ours and fixed: panels of
// rows of the output (columns, for a short and wide one: panel_extent), each one Eigen product, run on the thread pool. Inside a team
// of more than one thread Eigen does not split again, so each panel is the one-thread product of
// its rows, whatever the team size (and, as measured, the one-thread product of the whole).
//
// Eigen's algorithms that use products inside (the eigensolver's back-transformation, QR) are
// deterministic the same way when called in a team of more than one thread, or with one thread:
// unsplit_each runs them (the CPU backend: over its tensors) in such a team, eigen_unsplit one.
#pragma once
#include <omp.h>

#include <algorithm>
#include <exception>
#include <type_traits>

#include "support/eigen.h"

namespace opal {

// A panel's height (width): at least 64 rows (128 columns; narrower ones ran 5x slower), and
// an extent's sixteenth, so that a big product is not cut finer than a pool needs: each panel
// packs the whole other operand again (Eigen's own split shares it).
inline long long panel_extent(long long extent, bool cols) {
  const long long sixteenth = (extent + 15) / 16;
  return std::max<long long>(cols ? 128 : 64, (sixteenth + 63) / 64 * 64);
}
// Below this many multiply-adds Eigen never splits a product (it splits from 2 x 50000): no
// thread pool either.
inline constexpr double kSerialProductWork = 65536;

// f(i) for i < n on the thread pool, at most `most` at once (0: the whole team), in a team of
// at least two threads, where Eigen does not split the products f runs; on the calling thread
// where Eigen would not split them either (one thread, or inside a team already). An exception
// from f is rethrown here, the first one caught.
template <class F>
void unsplit_each(long long n, int most, F&& f) {
  const int threads = omp_get_max_threads();
  if (threads == 1 || omp_in_parallel()) {
    for (long long i = 0; i < n; ++i) f(i);
    return;
  }
  const int team = std::max(2, most > 0 ? std::min(most, threads) : threads);
  std::exception_ptr failed;
#pragma omp parallel for schedule(dynamic) num_threads(team)
  for (long long i = 0; i < n; ++i) {
    try {
      f(i);
    } catch (...) {
#pragma omp critical(opal_unsplit_each)
      if (!failed) failed = std::current_exception();
    }
  }
  if (failed) std::rethrow_exception(failed);
}

// out = alpha * lhs * rhs, or out += alpha * lhs * rhs with `accumulate` (out sized already;
// lhs and rhs any Eigen expressions, transposed or blocks, not aliasing out).
template <class Out, class L, class R>
void product_into(Out&& out, const L& lhs, const R& rhs, typename std::decay_t<Out>::Scalar alpha = 1, bool accumulate = false) {
  using Scalar = typename std::decay_t<Out>::Scalar;
  const long long m = out.rows(), n = out.cols();
  if (m == 0 || n == 0) return;
  // a short, wide output splits into panels of columns instead (the choice is the shape's)
  const bool by_cols = m < 2 * 64 && n >= 2 * 128;
  const long long extent = by_cols ? n : m, P = panel_extent(extent, by_cols);
  auto panel = [&](long long at, long long w) {
    const long long r0 = by_cols ? 0 : at, h = by_cols ? m : w, c0 = by_cols ? at : 0, cw = by_cols ? w : n;
    auto o = out.block(r0, c0, h, cw);
    const auto l = lhs.middleRows(r0, h);
    const auto r = rhs.middleCols(c0, cw);
    if (accumulate) o.noalias() += alpha * (l * r);
    else if (alpha == Scalar(1)) o.noalias() = l * r;
    else o.noalias() = alpha * (l * r);
  };
  const long long panels = (extent + P - 1) / P;
  auto each = [&](long long p) { panel(p * P, std::min(P, extent - p * P)); };
  if (double(m) * double(n) * double(lhs.cols()) < kSerialProductWork) {  // Eigen does not split it either
    for (long long p = 0; p < panels; ++p) each(p);
    return;
  }
  unsplit_each(panels, 0, each);  // the whole team even for one panel: alone, Eigen would split it
}

// f(), in a team of two (the other thread waits), so that Eigen does not split the products
// inside it: for Eigen's algorithms (QR, eigensolvers) off the thread pool.
template <class F>
void eigen_unsplit(F&& f) {
  unsplit_each(1, 1, [&](long long) { f(); });
}

// lhs * rhs as a new row-major matrix. Assigned to a matrix, it moves its buffer in: a buffer
// that must stay where it is (a gradient the optimizer holds a pointer to) takes product_into.
template <class L, class R>
auto product_of(const L& lhs, const R& rhs) {
  using Scalar = typename L::Scalar;
  Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> out(lhs.rows(), rhs.cols());
  product_into(out, lhs, rhs);
  return out;
}

}  // namespace opal
