// A host trainer that uses Opal through its C ABI only (opal.h, libopal.so): a two-layer MLP
// fits a fixed random teacher network. Forward and backward are plain loops; Opal updates the
// weights in place from the gradients the host writes.
//
//   opal_cpp_host [--spec adamw] [--steps 300] [--lr 1e-2] [--checkpoint FILE] [--save-at N] [--resume]
//
// Prints one JSON line at step 1 and every 10 steps: {"step":…,"loss":…,"ms":…}. With --checkpoint and
// --save-at N it saves the optimizer state and the weights after step N; with --resume it
// starts from that file. The batches depend only on the step, so a resumed run continues
// exactly where the saved one was.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "opal.h"

namespace {

constexpr int kIn = 16, kHidden = 64, kOut = 4, kBatch = 64;

void check(opal_status s, const char* what) {
  if (s != OPAL_OK) {
    std::fprintf(stderr, "opal_cpp_host: %s failed (%s):\n%s\n", what, opal_status_name(s), opal_last_error());
    std::exit(2);
  }
}

struct Layer {
  int in, out;
  std::vector<float> w, b, gw, gb;
  Layer(int in_, int out_, std::mt19937& rng) : in(in_), out(out_), w(size_t(in_) * out_), b(out_), gw(w.size()), gb(out_) {
    std::normal_distribution<float> n(0.f, 1.f / std::sqrt(float(in_)));
    for (auto& x : w) x = n(rng);
  }
  // y[k][o] = sum_i W[o][i] x[k][i] + b[o]   (W stored (out, in), as PyTorch does)
  void forward(const std::vector<float>& x, std::vector<float>& y) const {
    y.assign(size_t(kBatch) * out, 0.f);
    for (int k = 0; k < kBatch; ++k)
      for (int o = 0; o < out; ++o) {
        float s = b[o];
        for (int i = 0; i < in; ++i) s += w[size_t(o) * in + i] * x[size_t(k) * in + i];
        y[size_t(k) * out + o] = s;
      }
  }
  // Gradients of W and b from dy; returns dx.
  void backward(const std::vector<float>& x, const std::vector<float>& dy, std::vector<float>& dx) {
    std::fill(gw.begin(), gw.end(), 0.f);
    std::fill(gb.begin(), gb.end(), 0.f);
    dx.assign(size_t(kBatch) * in, 0.f);
    for (int k = 0; k < kBatch; ++k)
      for (int o = 0; o < out; ++o) {
        float d = dy[size_t(k) * out + o];
        gb[o] += d;
        for (int i = 0; i < in; ++i) {
          gw[size_t(o) * in + i] += d * x[size_t(k) * in + i];
          dx[size_t(k) * in + i] += d * w[size_t(o) * in + i];
        }
      }
  }
  void add_to(opal_optimizer* opt, const std::string& name) {
    int64_t ws[2] = {out, in}, bs[1] = {out};
    check(opal_add_param(opt, (name + ".weight").c_str(), 2, ws, OPAL_F32, OPAL_CPU, w.data(), gw.data()), "opal_add_param");
    check(opal_add_param(opt, (name + ".bias").c_str(), 1, bs, OPAL_F32, OPAL_CPU, b.data(), gb.data()), "opal_add_param");
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string spec = "adamw", checkpoint;
  int steps = 300, save_at = -1;
  double lr = 1e-2;
  bool resume = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "opal_cpp_host: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--spec") spec = value();
    else if (a == "--steps") steps = std::atoi(value().c_str());
    else if (a == "--lr") lr = std::atof(value().c_str());
    else if (a == "--checkpoint") checkpoint = value();
    else if (a == "--save-at") save_at = std::atoi(value().c_str());
    else if (a == "--resume") resume = true;
    else {
      std::fprintf(stderr, "usage: opal_cpp_host [--spec S] [--steps N] [--lr X] [--checkpoint FILE] [--save-at N] [--resume]\n");
      return 2;
    }
  }

  std::mt19937 init(1);
  Layer teacher1(kIn, kHidden, init), teacher2(kHidden, kOut, init);
  Layer l1(kIn, kHidden, init), l2(kHidden, kOut, init);

  opal_optimizer* opt = nullptr;
  check(opal_create(spec.c_str(), nullptr, &opt), "opal_create");
  l1.add_to(opt, "fc1");
  l2.add_to(opt, "fc2");
  check(opal_set_hparam(opt, "lr", lr), "opal_set_hparam");
  int first = 1;
  if (resume) {
    const char* report = nullptr;
    check(opal_load(opt, checkpoint.c_str(), &report), "opal_load");
    int64_t t = 0;
    check(opal_step_count(opt, &t), "opal_step_count");
    first = int(t) + 1;
    std::fprintf(stderr, "opal_cpp_host: %s\n", report);
  }

  std::vector<float> x(size_t(kBatch) * kIn), h, a, y, t1, t2, dy, da, dh, dx;
  auto start = std::chrono::steady_clock::now();
  for (int step = first; step <= steps; ++step) {
    std::mt19937 rng(1000 + step);  // the batch depends on the step only
    std::normal_distribution<float> n(0.f, 1.f);
    for (auto& v : x) v = n(rng);
    teacher1.forward(x, t1);
    for (auto& v : t1) v = std::tanh(v);
    teacher2.forward(t1, t2);
    l1.forward(x, h);
    a = h;
    for (auto& v : a) v = std::tanh(v);
    l2.forward(a, y);
    double loss = 0;
    dy.resize(y.size());
    for (size_t i = 0; i < y.size(); ++i) {
      float d = y[i] - t2[i];
      loss += 0.5 * d * d / kBatch;
      dy[i] = d / kBatch;
    }
    l2.backward(a, dy, da);
    dh.resize(da.size());
    for (size_t i = 0; i < da.size(); ++i) dh[i] = da[i] * (1 - a[i] * a[i]);
    l1.backward(x, dh, dx);
    check(opal_step(opt, nullptr), "opal_step");
    if (step == 1 || step % 10 == 0 || step == steps) {
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      std::printf("{\"step\":%d,\"loss\":%.9g,\"ms\":%.3f}\n", step, loss, ms);
    }
    if (step == save_at && !checkpoint.empty()) check(opal_save(opt, checkpoint.c_str(), OPAL_SAVE_PARAMS), "opal_save");
  }
  opal_destroy(opt);
  return 0;
}
