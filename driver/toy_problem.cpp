// Linear-regression toy problem (Eigen for the matrix products).
#include "driver/toy_problem.h"

#include <random>

#include "support/eigen.h"

namespace opal {

ToyResult run_toy(const SpecRef& spec, const ToyConfig& cfg, const std::map<std::string, double>& hparams,
                  const std::function<void(int, double)>& on_log) {
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  std::mt19937_64 rng(cfg.seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  auto randn = [&](int r, int c, float scale) {
    Mat m(r, c);
    for (int i = 0; i < r * c; ++i) m.data()[i] = normal(rng) * scale;
    return m;
  };
  Mat teacher = randn(cfg.out, cfg.in, 1.f / std::sqrt(float(cfg.in)));
  Mat W = randn(cfg.out, cfg.in, 0.01f);
  Eigen::VectorXf b = Eigen::VectorXf::Zero(cfg.out), gb(cfg.out);
  Mat gW(cfg.out, cfg.in);
  Optimizer opt(build_executable(spec), {{"linear.weight", {cfg.out, cfg.in}, W.data(), gW.data()}, {"linear.bias", {cfg.out}, b.data(), gb.data()}});
  for (const auto& [k, v] : hparams) opt.set_hparam(k, v);
  ToyResult res;
  for (int step = 1; step <= cfg.steps; ++step) {
    Mat X = randn(cfg.in, cfg.batch, 1.f);
    Mat E = (W * X).colwise() + b;
    E -= teacher * X;
    E.array() -= 0.5f;  // a bias the model must learn
    double loss = 0.5 * E.squaredNorm() / cfg.batch;
    gW = E * X.transpose() / float(cfg.batch);
    gb = E.rowwise().sum() / float(cfg.batch);
    opt.step();
    if (step % cfg.log_every == 0 || step == 1 || step == cfg.steps) {
      res.losses.push_back({step, loss});
      if (on_log) on_log(step, loss);
    }
    res.final_loss = loss;
  }
  return res;
}

}  // namespace opal
