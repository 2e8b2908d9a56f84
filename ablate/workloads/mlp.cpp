// `mlp`: an MLP classifier on Fashion-MNIST (Debian's dataset-fashion-mnist), images pooled 2x2
// to 14x14 so that a matrix optimizer's 196-wide side stays cheap on a CPU: 196 -> 128 -> 10,
// ReLU, batch 128. Validation: the 10,000 test images (loss and accuracy).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <numeric>

#include <fmt/format.h>

#include "ablate/workloads/builtin.h"
#include "ablate/workloads/common.h"
#include "runtime/error.h"

namespace opal::workloads {

namespace {

constexpr const char* kDir = "/usr/share/datasets/fashion-mnist";

// Reads a gzip'd IDX file through `gzip -dc` (no zlib dependency).
std::vector<uint8_t> read_idx(const std::string& path, int expect_magic, std::vector<int>& dims) {
  if (!std::filesystem::exists(path))
    throw Error(fmt::format("`{}` is missing: install Debian's dataset-fashion-mnist (scripts/setup.sh does)", path));
  std::string cmd = fmt::format("gzip -dc '{}'", path);
  std::FILE* f = popen(cmd.c_str(), "r");
  if (!f) throw Error(fmt::format("cannot run `{}`", cmd));
  std::vector<uint8_t> all;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) all.insert(all.end(), buf, buf + n);
  int rc = pclose(f);
  auto be32 = [&](size_t at) { return int(all[at]) << 24 | int(all[at + 1]) << 16 | int(all[at + 2]) << 8 | int(all[at + 3]); };
  if (rc != 0 || all.size() < 8 || be32(0) != expect_magic) throw Error(fmt::format("`{}` is not an IDX file of the expected kind", path));
  int nd = expect_magic & 0xff;
  size_t count = 1;
  dims.clear();
  for (int i = 0; i < nd; ++i) {
    dims.push_back(be32(4 + 4 * i));
    count *= size_t(dims.back());
  }
  size_t off = 4 + 4 * size_t(nd);
  if (all.size() != off + count) throw Error(fmt::format("`{}` is truncated", path));
  return std::vector<uint8_t>(all.begin() + off, all.end());
}

struct Dataset {
  Mat train_x, test_x;  // rows: images, pooled to 14x14, scaled to [0, 1] and centred
  std::vector<int> train_y, test_y;
};

Mat pooled(const std::vector<uint8_t>& px, int n) {
  Mat x(n, 196);
  for (int i = 0; i < n; ++i)
    for (int r = 0; r < 14; ++r)
      for (int c = 0; c < 14; ++c) {
        const uint8_t* p = &px[size_t(i) * 784 + (2 * r) * 28 + 2 * c];
        x(i, r * 14 + c) = (p[0] + p[1] + p[28] + p[29]) / (4 * 255.f) - 0.286f;
      }
  return x;
}

std::shared_ptr<const Dataset> load_fashion(const std::string& dir) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const Dataset>> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(dir); it != cache.end()) return it->second;
  auto d = std::make_shared<Dataset>();
  std::vector<int> dims;
  auto load = [&](const char* images, const char* labels, Mat& x, std::vector<int>& y) {
    auto px = read_idx(fmt::format("{}/{}", dir, images), 0x803, dims);
    if (dims.size() != 3 || dims[1] != 28 || dims[2] != 28) throw Error(fmt::format("`{}/{}` does not hold 28x28 images", dir, images));
    int n = dims[0];
    x = pooled(px, n);
    auto lb = read_idx(fmt::format("{}/{}", dir, labels), 0x801, dims);
    if (int(lb.size()) != n) throw Error(fmt::format("`{}/{}` has {} labels for {} images", dir, labels, lb.size(), n));
    y.assign(lb.begin(), lb.end());
  };
  load("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", d->train_x, d->train_y);
  load("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", d->test_x, d->test_y);
  cache[dir] = d;
  return d;
}

class MlpRun : public WorkloadRun {
 public:
  MlpRun(std::shared_ptr<const Dataset> d, uint64_t seed, int hidden, int batch) : d_(std::move(d)), batch_(batch) {
    auto r = stream(seed, 1);
    W1_ = randn(r, 196, hidden, std::sqrt(2.f / 196));
    W2_ = randn(r, hidden, 10, std::sqrt(1.f / hidden));
    b1_ = Vec::Zero(hidden);
    b2_ = Vec::Zero(10);
    gW1_.resize(196, hidden);
    gW2_.resize(hidden, 10);
    gb1_.resize(hidden);
    gb2_.resize(10);
    order_.resize(d_->train_y.size());
    std::iota(order_.begin(), order_.end(), 0);
    auto o = stream(seed, 2);
    std::shuffle(order_.begin(), order_.end(), o);
  }
  std::vector<ParamDesc> params() override {
    return {{"fc1.weight", {W1_.rows(), W1_.cols()}, W1_.data(), gW1_.data()},
            {"fc1.bias", {b1_.size()}, b1_.data(), gb1_.data(), false, ParamRole::Bias},
            {"fc2.weight", {W2_.rows(), W2_.cols()}, W2_.data(), gW2_.data()},
            {"fc2.bias", {b2_.size()}, b2_.data(), gb2_.data(), false, ParamRole::Bias}};
  }
  double train_step(int step) override {
    Mat X(batch_, 196);
    std::vector<int> y(batch_);
    for (int i = 0; i < batch_; ++i) {
      size_t k = order_[(size_t(step - 1) * batch_ + i) % order_.size()];
      X.row(i) = d_->train_x.row(k);
      y[i] = d_->train_y[k];
    }
    Mat H = (product_of(X, W1_).rowwise() + b1_.transpose()).cwiseMax(0.f);
    Mat G;
    double loss = softmax_xent(product_of(H, W2_).rowwise() + b2_.transpose(), y, &G);
    product_into(gW2_, H.transpose(), G);
    gb2_ = G.colwise().sum().transpose();
    Mat dH = product_of(G, W2_.transpose()).cwiseProduct((H.array() > 0.f).cast<float>().matrix());
    product_into(gW1_, X.transpose(), dH);
    gb1_ = dH.colwise().sum().transpose();
    return loss;
  }
  double validate(double* acc) override {
    Mat H = (product_of(d_->test_x, W1_).rowwise() + b1_.transpose()).cwiseMax(0.f);
    int ok = 0;
    double loss = softmax_xent(product_of(H, W2_).rowwise() + b2_.transpose(), d_->test_y, nullptr, &ok);
    if (acc) *acc = double(ok) / d_->test_y.size();
    return loss;
  }

 private:
  std::shared_ptr<const Dataset> d_;
  int batch_;
  Mat W1_, W2_, gW1_, gW2_;
  Vec b1_, b2_, gb1_, gb2_;
  std::vector<size_t> order_;
};

class Mlp : public Workload {
 public:
  explicit Mlp(const WorkloadOptions& o) : steps_(o.steps ? o.steps : 300), every_(o.eval_every ? o.eval_every : 50), data_(load_fashion(kDir)) {}
  std::string name() const override { return "mlp"; }
  std::string describe() const override {
    return fmt::format("MLP 196-128-10 on Fashion-MNIST (pooled to 14x14), batch 128, {} steps; validation on the 10k test images", steps_);
  }
  int steps() const override { return steps_; }
  int eval_every() const override { return every_; }
  bool has_accuracy() const override { return true; }
  std::unique_ptr<WorkloadRun> start(uint64_t seed) const override { return std::make_unique<MlpRun>(data_, seed, 128, 128); }

 private:
  int steps_, every_;
  std::shared_ptr<const Dataset> data_;
};

}  // namespace

std::unique_ptr<Workload> make_mlp(const WorkloadOptions& opts) { return std::make_unique<Mlp>(opts); }

}  // namespace opal::workloads
