// The CPU eigenbasis refresh of a rank-deficient Kronecker factor, split into its two parts: the
// decomposition (Eigen's SelfAdjointEigenSolver in double) and the canonical basis
// (runtime/cpu/linalg.h: the numerical null space made a function of the matrix alone). Issue 14
// asks that the second cost no more than the first. A benchmark, not a test.
//   cmake --build build --target bench_cpu_eigh && ./build/bench/bench_cpu_eigh [n rank ...]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "support/eigen.h"

#include "runtime/cpu/linalg.h"

namespace {
using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

double seconds_since(std::chrono::steady_clock::time_point t) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count(); }
}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<long long, long long>> cases = {{1024, 256}, {2048, 256}, {2048, 1024}};
  if (argc > 2) {
    cases.clear();
    for (int i = 1; i + 1 < argc; i += 2) cases.push_back({std::atoll(argv[i]), std::atoll(argv[i + 1])});
  }
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  for (auto [n, rank] : cases) {
    MatD G(n, rank);
    for (long long i = 0; i < G.size(); ++i) G.data()[i] = normal(rng);
    MatD L = G * G.transpose();  // a factor of rank `rank`, as SOAP's L = g g^T of a [n, rank] gradient
    auto t0 = std::chrono::steady_clock::now();
    Eigen::SelfAdjointEigenSolver<MatD> es(L);
    double solve = seconds_since(t0);
    MatD V = es.eigenvectors();
    Eigen::VectorXd lam = es.eigenvalues();
    std::vector<double> values(n), vectors(n * n);
    t0 = std::chrono::steady_clock::now();
    opal::cpu::canonicalize_eigh(n, lam.data(), V.data(), false, values.data(), vectors.data());
    double canon = seconds_since(t0);
    std::printf("n %lld, rank %lld (null space %lld): decomposition %.2f s, canonical basis %.2f s, ratio %.2f\n", n, rank, n - rank, solve, canon,
                canon / solve);
  }
}
