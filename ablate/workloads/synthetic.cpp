// The thesis notes' toy problems: multi-output linear regression, a matrix quadratic with
// Kronecker-structured curvature, softmax regression. Inputs are anisotropic (log-spaced
// scales), so a preconditioner has something to find.
#include "ablate/workloads/builtin.h"

#include <fmt/format.h>

#include "ablate/workloads/common.h"

namespace opal::workloads {

namespace {

// Column scales log-spaced from 1 down to 1/cond.
Vec scales(int n, float cond) {
  Vec s(n);
  for (int i = 0; i < n; ++i) s[i] = std::pow(cond, -float(i) / std::max(1, n - 1));
  return s;
}

// A random SPD matrix with eigenvalues log-spaced in [1/cond, 1].
Mat spd(std::mt19937_64& rng, int n, float cond) {
  Mat a = randn(rng, n, n, 1.f);
  Mat q;
  eigen_unsplit([&] { q = Eigen::HouseholderQR<Mat>(a).householderQ(); });
  return product_of(Mat(q * scales(n, cond).asDiagonal()), q.transpose());
}

class LinregRun : public WorkloadRun {
 public:
  LinregRun(uint64_t seed, int in, int out, int batch) : seed_(seed), in_(in), out_(out), batch_(batch) {
    auto r = stream(seed, 1);
    teacher_ = randn(r, out, in, 1.f / std::sqrt(float(in)));
    bias_star_ = randn(r, out, 1, 1.f);
    W_ = randn(r, out, in, 0.01f);
    b_ = Vec::Zero(out);
    gW_.resize(out, in);
    gb_.resize(out);
    scale_ = scales(in, 10.f);
    auto v = stream(seed, 2);
    Xval_ = scale_.asDiagonal() * randn(v, in, 1024, 1.f);
    Yval_ = product_of(teacher_, Xval_).colwise() + Vec(bias_star_.col(0));
  }
  std::vector<ParamDesc> params() override {
    return {{"linear.weight", {out_, in_}, W_.data(), gW_.data()}, {"linear.bias", {out_}, b_.data(), gb_.data(), false, ParamRole::Bias}};
  }
  double train_step(int step) override {
    auto r = stream(seed_, 3, step);
    Mat X = scale_.asDiagonal() * randn(r, in_, batch_, 1.f);
    Mat Y = (product_of(teacher_, X).colwise() + Vec(bias_star_.col(0))) + randn(r, out_, batch_, 0.3f);
    Mat E = (product_of(W_, X).colwise() + b_) - Y;
    gW_ = product_of(E, X.transpose()) / float(batch_);
    gb_ = E.rowwise().sum() / float(batch_);
    return 0.5 * E.squaredNorm() / batch_;
  }
  double validate(double*) override {
    Mat E = ((W_ * Xval_).colwise() + b_) - Yval_;
    return 0.5 * E.squaredNorm() / Xval_.cols();
  }

 private:
  uint64_t seed_;
  int in_, out_, batch_;
  Mat teacher_, bias_star_, W_, gW_, Xval_, Yval_;
  Vec b_, gb_, scale_;
};

class QuadraticRun : public WorkloadRun {
 public:
  QuadraticRun(uint64_t seed, int m, int n) : seed_(seed), m_(m), n_(n) {
    auto r = stream(seed, 1);
    L_ = spd(r, m, 100.f);
    R_ = spd(r, n, 100.f);
    Wstar_ = randn(r, m, n, 1.f);
    bstar_ = randn(r, m, 1, 1.f).col(0);
    lam_ = scales(m, 100.f);
    W_ = Mat::Zero(m, n);
    b_ = Vec::Zero(m);
    gW_.resize(m, n);
    gb_.resize(m);
  }
  std::vector<ParamDesc> params() override {
    return {{"quad.weight", {m_, n_}, W_.data(), gW_.data()}, {"quad.bias", {m_}, b_.data(), gb_.data(), false, ParamRole::Bias}};
  }
  double train_step(int step) override {
    double loss = validate(nullptr);
    auto r = stream(seed_, 3, step);
    gW_ = L_ * (W_ - Wstar_) * R_ + randn(r, m_, n_, 0.02f);
    gb_ = lam_.cwiseProduct(b_ - bstar_) + Vec(randn(r, m_, 1, 0.02f).col(0));
    return loss;
  }
  double validate(double*) override {
    Mat D = W_ - Wstar_;
    Vec e = b_ - bstar_;
    return 0.5 * (D.transpose() * L_ * D * R_).trace() + 0.5 * e.dot(lam_.cwiseProduct(e));
  }

 private:
  uint64_t seed_;
  int m_, n_;
  Mat L_, R_, Wstar_, W_, gW_;
  Vec bstar_, lam_, b_, gb_;
};

class SoftmaxRun : public WorkloadRun {
 public:
  SoftmaxRun(uint64_t seed, int features, int classes, int batch) : seed_(seed), f_(features), c_(classes), batch_(batch) {
    auto r = stream(seed, 1);
    means_ = randn(r, classes, features, 1.f);
    scale_ = scales(features, 10.f);
    W_ = Mat::Zero(features, classes);
    b_ = Vec::Zero(classes);
    gW_.resize(features, classes);
    gb_.resize(classes);
    auto v = stream(seed, 2);
    sample(v, 2048, Xval_, yval_);
  }
  std::vector<ParamDesc> params() override {
    return {{"softmax.weight", {f_, c_}, W_.data(), gW_.data()}, {"softmax.bias", {c_}, b_.data(), gb_.data(), false, ParamRole::Bias}};
  }
  double train_step(int step) override {
    auto r = stream(seed_, 3, step);
    Mat X;
    std::vector<int> y;
    sample(r, batch_, X, y);
    Mat G;
    double loss = softmax_xent((X * W_).rowwise() + b_.transpose(), y, &G);
    gW_ = X.transpose() * G;
    gb_ = G.colwise().sum().transpose();
    return loss;
  }
  double validate(double* acc) override {
    int ok = 0;
    double loss = softmax_xent((Xval_ * W_).rowwise() + b_.transpose(), yval_, nullptr, &ok);
    if (acc) *acc = double(ok) / yval_.size();
    return loss;
  }

 private:
  void sample(std::mt19937_64& r, int n, Mat& X, std::vector<int>& y) const {
    std::uniform_int_distribution<int> cls(0, c_ - 1);
    X = randn(r, n, f_, 1.5f);
    y.resize(n);
    for (int i = 0; i < n; ++i) {
      y[i] = cls(r);
      X.row(i) += means_.row(y[i]);
    }
    X = X * scale_.asDiagonal();
  }
  uint64_t seed_;
  int f_, c_, batch_;
  Mat means_, W_, gW_, Xval_;
  Vec scale_, b_, gb_;
  std::vector<int> yval_;
};

class Synthetic : public Workload {
 public:
  Synthetic(std::string kind, const WorkloadOptions& o)
      : kind_(std::move(kind)), steps_(o.steps ? o.steps : 300), every_(o.eval_every ? o.eval_every : 25) {}
  std::string name() const override { return kind_; }
  std::string describe() const override {
    if (kind_ == "linreg") return fmt::format("linear regression y = Wx + b, W 32x64, anisotropic inputs, batch 64, {} steps", steps_);
    if (kind_ == "quadratic")
      return fmt::format("matrix quadratic 1/2 tr(D^T L D R), W 32x48, cond(L) = cond(R) = 100, noisy gradients, {} steps", steps_);
    return fmt::format("softmax regression, 64 features, 10 classes, batch 64, {} steps", steps_);
  }
  int steps() const override { return steps_; }
  int eval_every() const override { return every_; }
  bool has_accuracy() const override { return kind_ == "softmax"; }
  std::unique_ptr<WorkloadRun> start(uint64_t seed) const override {
    if (kind_ == "linreg") return std::make_unique<LinregRun>(seed, 64, 32, 64);
    if (kind_ == "quadratic") return std::make_unique<QuadraticRun>(seed, 32, 48);
    return std::make_unique<SoftmaxRun>(seed, 64, 10, 64);
  }

 private:
  std::string kind_;
  int steps_, every_;
};

}  // namespace

std::unique_ptr<Workload> make_synthetic(const std::string& kind, const WorkloadOptions& opts) { return std::make_unique<Synthetic>(kind, opts); }

}  // namespace opal::workloads
