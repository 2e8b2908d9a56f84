// Shared pieces of the built-in workloads: row-major float matrices, seeded streams, softmax
// cross-entropy.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "support/eigen.h"
#include "support/eigen_product.h"

namespace opal::workloads {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::VectorXf;
using RowVec = Eigen::RowVectorXf;

// A stream seeded by (seed, purpose, index): the data of step k is the same for every cell of a
// grid and does not depend on what was drawn before.
inline std::mt19937_64 stream(uint64_t seed, uint64_t purpose, uint64_t index = 0) {
  std::seed_seq s{uint32_t(seed), uint32_t(seed >> 32), uint32_t(purpose), uint32_t(index), uint32_t(index >> 32)};
  return std::mt19937_64(s);
}

inline Mat randn(std::mt19937_64& rng, int r, int c, float scale) {
  std::normal_distribution<float> n(0.f, 1.f);
  Mat m(r, c);
  for (int i = 0; i < r * c; ++i) m.data()[i] = n(rng) * scale;
  return m;
}

// Mean cross-entropy of `logits` (rows: samples) against `labels`; writes d(loss)/d(logits)
// into `grad` when given, and the number of correct argmax predictions into `correct`.
inline double softmax_xent(const Mat& logits, const std::vector<int>& labels, Mat* grad, int* correct = nullptr) {
  const int n = int(logits.rows());
  double loss = 0;
  if (grad) grad->resize(logits.rows(), logits.cols());
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    Eigen::Index arg;
    float mx = logits.row(i).maxCoeff(&arg);
    if (arg == labels[i]) ++ok;
    RowVec e = (logits.row(i).array() - mx).exp().matrix();
    float z = e.sum();
    loss += std::log(z) + mx - logits(i, labels[i]);
    if (grad) {
      grad->row(i) = e / (z * n);
      (*grad)(i, labels[i]) -= 1.f / n;
    }
  }
  if (correct) *correct = ok;
  return loss / n;
}

}  // namespace opal::workloads
