// CPU AdamW over the seed paper's GPT-2 parameter set (162M params) at four byte models, each
// against this machine's memory bandwidth measured in alternation with its own steps. A round
// times one step, then streaming loops over arrays of the parameters' size with next to no
// arithmetic: the stream (the better of STREAM's triad and AdamW's f32 accesses, read w g m v and
// write w m v, 28 B an element) and the model's own accesses at its element sizes (what the
// memory gives that pattern). The step and each bandwidth are the best of 7 rounds, as STREAM
// reports them: a shared machine's bandwidth drops by tens of percent for seconds at a time, and
// one figure measured at the start had some models at 150% of it. Each model also runs over a
// set small enough to stay in cache: its rate there is the ceiling the arithmetic sets on this
// machine's cores. A benchmark, not a test.
//   f32:          w, g, m, v f32                     28 B/param (read w g m v, write w m v)
//   bf16 params:  w, g bf16, m, v f32                22 B/param
//   all bf16:     w, g, m, v bf16 (`state m: bf16`)  14 B/param
//   bf16 + SR:    the same, every bf16 store rounded stochastically (`state(bf16, stochastic)`
//                 and set_stochastic_rounding)        14 B/param
//   q8 state:     w, g bf16, m, v q8 (`state m: q8`) 10 B/param, and a scale per 256 (0.06 B)
//   cmake --build build --target bench_cpu_precision && ./build/bench/bench_cpu_precision [MODEL...]
// (MODEL: the byte models to run, e.g. `q8`; default all)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <omp.h>

#include "driver/build.h"
#include "runtime/optimizer.h"

#include "timing.h"

namespace {
using opal::bench::median_ms;

double once_ms(const std::function<void()>& f) { return median_ms(f, 1); }

// torch's AdamW, as the stdlib's `adamw`, with its moments stored as `storage`.
std::string adamw_spec(const std::string& storage) {
  return fmt::format(
      "component mom(beta = 0.9) {{\n  state m{0} = zeros\n  m = beta * m + (1 - beta) * u\n  u = m / (1 - beta ^ t)\n}}\n"
      "component var(beta = 0.999, eps = 1e-8) {{\n  state v{0} = zeros\n  v = beta * v + (1 - beta) * g * g\n"
      "  u = u / (sqrt(v / (1 - beta ^ t)) + eps)\n}}\n"
      "optimizer o(lr = 1e-3, wd = 0.01) {{\n  other: mom -> var -> decay(wd) -> scale(lr)\n}}\n",
      storage.empty() ? "" : ": " + storage);
}

// A streaming loop with AdamW's accesses over n elements: read w, g, m, v, write w, m, v, with
// w and g of type W and m and v of type S, and one add each (OpenMP, as the kernels are); and
// STREAM's triad over three of its arrays, w = g + s * m (12 B an element).
class Streaming {
 public:
  virtual ~Streaming() = default;
  virtual double round_gbs() = 0;  // one pass of the access pattern: GB/s
};

template <class W, class S>
class Stream : public Streaming {
 public:
  // The four arrays are carved from one allocation, each 4 KiB + 64 B past the last: separate
  // allocations of equal size streamed up to a fifth slower here (72 against 84 GB/s), slower
  // than AdamW's own step over the optimizer's buffers.
  explicit Stream(size_t n) : n_(n), buf_(2 * (n * sizeof(W) + n * sizeof(S)) + 4 * kGap) {
    unsigned char* p = buf_.data();
    w_ = reinterpret_cast<W*>(p), p += n * sizeof(W) + kGap;
    g_ = reinterpret_cast<W*>(p), p += n * sizeof(W) + kGap;
    m_ = reinterpret_cast<S*>(p), p += n * sizeof(S) + kGap;
    v_ = reinterpret_cast<S*>(p);
    std::fill(g_, g_ + n, W(1));
    pass();
  }
  static constexpr double kBytes = 3 * sizeof(W) + 4 * sizeof(S);  // w read and written, g read; m, v both
  double round_gbs() override {
    return double(n_) * kBytes / once_ms([&] { pass(); }) / 1e6;
  }
  double triad_gbs() {
    W *w = w_, *g = g_;
    const S* m = m_;
    const double ms = once_ms([&] {
#pragma omp parallel for simd schedule(static)
      for (long long i = 0; i < (long long)n_; ++i) w[i] = W(g[i] + W(0.5) * W(m[i]));
    });
    return double(n_) * (2 * sizeof(W) + sizeof(S)) / ms / 1e6;
  }

 private:
  void pass() {
    W *w = w_, *g = g_;
    S *m = m_, *v = v_;
#pragma omp parallel for simd schedule(static)
    for (long long i = 0; i < (long long)n_; ++i) {
      w[i] = W(w[i] + g[i]);
      m[i] = S(m[i] + S(g[i]));
      v[i] = S(v[i] + S(g[i]));
    }
  }
  static constexpr size_t kGap = 4096 + 64;
  size_t n_;
  std::vector<unsigned char> buf_;  // zeroed
  W *w_, *g_;
  S *m_, *v_;
};

double best(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::vector<int64_t>> shapes = {{50257, 768}, {256, 768}, {768}, {50257, 768}};
  for (int l = 0; l < 12; ++l)
    for (auto s : std::vector<std::vector<int64_t>>{{2304, 768}, {768, 768}, {3072, 768}, {768, 3072}, {768}, {768}}) shapes.push_back(s);
  size_t total = 0;
  for (const auto& s : shapes) {
    size_t n = 1;
    for (auto d : s) n *= d;
    total += n;
  }
  Stream<float, float> stream(total);
  std::printf("params %.1fM in %zu tensors\n", double(total) / 1e6, shapes.size());
  struct Model {
    const char* name;
    opal::DType params;
    const char* storage;
    double bytes_per_param;
    std::function<std::unique_ptr<Streaming>()> same;  // the streaming loop with the model's accesses
    bool master = false;                               // an f32 master copy of each bf16 parameter
    const char* route_state = "";                      // the route's state storage (SpecRef::storage)
    bool stochastic = false;                           // bf16 parameter writes rounded stochastically
  };
  auto same_as = [total]<class W, class S>(W, S) {
    return [total]() -> std::unique_ptr<Streaming> { return std::make_unique<Stream<W, S>>(total); };
  };
  // The same kernels over four 256x512 tensors (0.5M parameters: at most 15 MB, in cache, and
  // large enough to run on every thread): the rate the arithmetic allows, whatever the memory
  std::vector<std::vector<int64_t>> small(4, std::vector<int64_t>{256, 512});
  const size_t small_total = 4 * 256 * 512;
  auto make = [&](const Model& m, const std::vector<std::vector<int64_t>>& set) {
    std::vector<opal::ParamDesc> params;
    for (size_t i = 0; i < set.size(); ++i) {
      opal::ParamDesc p{"p" + std::to_string(i), set[i]};
      p.dtype = p.grad_dtype = m.params;
      p.master = m.master;
      params.push_back(p);
    }
    auto opt = opal::make_optimizer(opal::compile_spec({adamw_spec(m.storage), "", "", m.route_state}), params);  // owned memory
    opt->set_stochastic_rounding(m.stochastic, 1);
    for (size_t i = 0; i < set.size(); ++i) {  // GPT-2-like magnitudes, not zeros: q8 blocks of real values
      size_t n = 1;
      for (auto d : set[i]) n *= size_t(d);
      std::vector<float> w(n), g(n);
      for (size_t e = 0; e < w.size(); ++e) w[e] = 0.02f * std::sin(0.37f * float(e + i)), g[e] = 1e-3f * std::cos(0.11f * float(e * 7 + i));
      opt->write_param("p" + std::to_string(i), w);
      opt->write_grad("p" + std::to_string(i), g);
    }
    for (int i = 0; i < 2; ++i) opt->step();
    return opt;
  };
  std::printf("%-12s %11s %9s %7s %11s %6s %13s %6s %16s\n", "model", "", "step", "GB/s", "stream", "of it", "same accesses", "of it",
              "in-cache ceiling");
  std::vector<std::string> bound;
  const std::vector<Model> models = {{"f32", opal::DType::F32, "", 28, same_as(float(), float())},
                                     {"bf16 params", opal::DType::BF16, "", 22, same_as(uint16_t(), float())},
                                     {"bf16 + master", opal::DType::BF16, "", 28, same_as(float(), float()), true},
                                     {"all bf16", opal::DType::BF16, "bf16", 14, same_as(uint16_t(), uint16_t())},
                                     {"bf16 + SR", opal::DType::BF16, "", 14, same_as(uint16_t(), uint16_t()), false, "bf16, stochastic", true},
                                     {"q8 state", opal::DType::BF16, "q8", 10 + 4.0 * 4 / 256, same_as(uint16_t(), uint8_t())}};
  for (const Model& m : models) {
    bool wanted = argc == 1;
    for (int a = 1; a < argc; ++a) wanted |= std::string(m.name).find(argv[a]) != std::string::npos;
    if (!wanted) continue;
    std::vector<double> steps, bands, sames;
    {
      auto opt = make(m, shapes);
      auto same_loop = m.same();
      for (int r = 0; r < 7; ++r) {
        steps.push_back(1 / once_ms([&] { opt->step(); }));  // a rate, so that the best is the largest
        bands.push_back(std::max(stream.round_gbs(), stream.triad_gbs()));
        sames.push_back(same_loop->round_gbs());
      }
    }
    const double ms = 1 / best(steps), band = best(bands), same = best(sames);
    const double gbs = double(total) * m.bytes_per_param / ms / 1e6;
    auto tiny = make(m, small);
    const double small_ms = median_ms([&] { tiny->step(); }, 101);
    const double ceiling = double(small_total) * m.bytes_per_param / small_ms / 1e6;
    std::printf("%-12s %4.0f B/param %7.1f ms %7.1f %6.1f GB/s %5.0f%% %8.1f GB/s %5.0f%% %11.1f GB/s\n", m.name, m.bytes_per_param, ms, gbs, band,
                100 * gbs / band, same, 100 * gbs / same, ceiling);
    if (ceiling < 0.85 * band)
      bound.push_back(
          fmt::format("{}: 85% of the stream's {:.1f} GB/s is a step in {:.1f} ms; the step over parameters in cache takes {:.1f} ms "
                      "for as many on {} threads (at that rate per thread, {:.0f} threads would reach it)",
                      m.name, band, double(total) * m.bytes_per_param / (0.85 * band) / 1e6, small_ms * double(total) / double(small_total),
                      omp_get_max_threads(), std::ceil(0.85 * band / (ceiling / omp_get_max_threads()))));
  }
  std::printf(
      "(stream: the better of STREAM's triad and AdamW's f32 accesses with one add each; same accesses: the\n"
      " model's; each the best of 7 rounds run in turn with the model's steps. In-cache ceiling: the same step\n"
      " over 0.5M parameters that stay in cache, as GB/s of the same bytes per parameter: where it is below\n"
      " the bandwidth, the arithmetic, not memory, bounds the step)\n");
  for (const auto& b : bound) std::printf("bound by its arithmetic on this machine: %s\n", b.c_str());
}
