// `gpt`: a small character-level transformer language model on the Brown corpus, forward and
// backward written out over Eigen. Pre-LayerNorm blocks (causal multi-head attention, GELU MLP),
// learned token and position embeddings, an untied head. Validation: mean cross-entropy (nats
// per character) on fixed batches from the held-out last 10% of the corpus.
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include <fmt/format.h>

#include "ablate/workloads/builtin.h"
#include "ablate/workloads/common.h"
#include "runtime/error.h"

namespace opal::workloads {

namespace {

struct Corpus {
  std::vector<int> ids;  // the text as vocabulary ids
  int vocab = 0;
  size_t split = 0;  // ids[0, split) train, [split, end) validation
};

std::shared_ptr<const Corpus> make_corpus(const std::string& text) {
  auto c = std::make_shared<Corpus>();
  int map[256];
  std::fill(std::begin(map), std::end(map), -1);
  for (unsigned char ch : text)
    if (map[ch] < 0) map[ch] = 0;
  for (int& m : map)
    if (m == 0) m = c->vocab++;
  c->ids.reserve(text.size());
  for (unsigned char ch : text) c->ids.push_back(map[ch]);
  c->split = c->ids.size() * 9 / 10;
  return c;
}

struct Layer {
  Vec g1, b1, g2, b2, bb1, bb2;
  Mat wq, wk, wv, wo, w1, w2;
};

// Activations of one layer kept for the backward pass.
struct LayerCache {
  Mat x, h, xhat1, q, k, v, o, x1, h2, xhat2, u, gu;
  Vec rstd1, rstd2;
  std::vector<Mat> p;  // attention probabilities per (sequence, head)
};

void layer_norm(const Mat& x, const Vec& g, const Vec& b, Mat& y, Mat& xhat, Vec& rstd) {
  const int n = int(x.rows()), d = int(x.cols());
  xhat.resize(n, d);
  rstd.resize(n);
  for (int i = 0; i < n; ++i) {
    float mu = x.row(i).mean();
    float var = (x.row(i).array() - mu).square().mean();
    rstd[i] = 1.f / std::sqrt(var + 1e-5f);
    xhat.row(i) = (x.row(i).array() - mu) * rstd[i];
  }
  y = (xhat.array().rowwise() * g.transpose().array()).rowwise() + b.transpose().array();
}

// dx from dy; accumulates dg and db.
Mat layer_norm_back(const Mat& dy, const Mat& xhat, const Vec& rstd, const Vec& g, Vec& dg, Vec& db) {
  dg += (dy.cwiseProduct(xhat)).colwise().sum().transpose();
  db += dy.colwise().sum().transpose();
  Mat dxhat = dy.array().rowwise() * g.transpose().array();
  Mat dx(dy.rows(), dy.cols());
  for (int i = 0; i < dy.rows(); ++i) {
    float m1 = dxhat.row(i).mean(), m2 = dxhat.row(i).cwiseProduct(xhat.row(i)).mean();
    dx.row(i) = rstd[i] * (dxhat.row(i).array() - m1 - xhat.row(i).array() * m2);
  }
  return dx;
}

constexpr float kGeluC = 0.7978845608f;  // sqrt(2 / pi)
float gelu(float u) { return 0.5f * u * (1.f + std::tanh(kGeluC * (u + 0.044715f * u * u * u))); }
float gelu_grad(float u) {
  float th = std::tanh(kGeluC * (u + 0.044715f * u * u * u));
  return 0.5f * (1.f + th) + 0.5f * u * (1.f - th * th) * kGeluC * (1.f + 3.f * 0.044715f * u * u);
}

class GptRun : public WorkloadRun {
 public:
  GptRun(std::shared_ptr<const Corpus> c, const GptConfig& cfg, uint64_t seed) : c_(std::move(c)), cfg_(cfg), seed_(seed) {
    const int d = cfg.d, V = c_->vocab;
    auto r = stream(seed, 1);
    tok_ = randn(r, V, d, 0.02f);
    pos_ = randn(r, cfg.ctx, d, 0.02f);
    float out_scale = 0.02f / std::sqrt(2.f * cfg.layers);
    layers_.resize(cfg.layers);
    for (auto& L : layers_) {
      L.g1 = L.g2 = Vec::Ones(d);
      L.b1 = L.b2 = L.bb2 = Vec::Zero(d);
      L.bb1 = Vec::Zero(4 * d);
      L.wq = randn(r, d, d, 0.02f);
      L.wk = randn(r, d, d, 0.02f);
      L.wv = randn(r, d, d, 0.02f);
      L.wo = randn(r, d, d, out_scale);
      L.w1 = randn(r, d, 4 * d, 0.02f);
      L.w2 = randn(r, 4 * d, d, out_scale);
    }
    gf_ = Vec::Ones(d);
    bf_ = Vec::Zero(d);
    head_ = randn(r, d, V, 0.02f);
    // gradients mirror the weights
    gtok_ = Mat::Zero(V, d);
    gpos_ = Mat::Zero(cfg.ctx, d);
    grads_.resize(cfg.layers);
    for (int l = 0; l < cfg.layers; ++l) zero_like(layers_[l], grads_[l]);
    ggf_ = Vec::Zero(d);
    gbf_ = Vec::Zero(d);
    ghead_ = Mat::Zero(d, V);
  }

  // Each parameter with its role, as opal.torch would infer it from the modules: the token and
  // position embeddings, the output head, the layer norms' weights and biases, the MLP biases.
  std::vector<ParamDesc> params() override {
    std::vector<ParamDesc> ps;
    auto m = [&](std::string n, Mat& w, Mat& g, ParamRole role = ParamRole::None) {
      ps.push_back({std::move(n), {w.rows(), w.cols()}, w.data(), g.data(), false, role});
    };
    auto v = [&](std::string n, Vec& w, Vec& g, ParamRole role) { ps.push_back({std::move(n), {w.size()}, w.data(), g.data(), false, role}); };
    m("embed.tok", tok_, gtok_, ParamRole::Embedding);
    m("embed.pos", pos_, gpos_, ParamRole::Embedding);
    for (int l = 0; l < cfg_.layers; ++l) {
      auto& L = layers_[l];
      auto& G = grads_[l];
      std::string p = fmt::format("blocks.{}.", l);
      v(p + "ln1.weight", L.g1, G.g1, ParamRole::Norm);
      v(p + "ln1.bias", L.b1, G.b1, ParamRole::Norm);
      m(p + "attn.wq", L.wq, G.wq);
      m(p + "attn.wk", L.wk, G.wk);
      m(p + "attn.wv", L.wv, G.wv);
      m(p + "attn.wo", L.wo, G.wo);
      v(p + "ln2.weight", L.g2, G.g2, ParamRole::Norm);
      v(p + "ln2.bias", L.b2, G.b2, ParamRole::Norm);
      m(p + "mlp.w1", L.w1, G.w1);
      v(p + "mlp.b1", L.bb1, G.bb1, ParamRole::Bias);
      m(p + "mlp.w2", L.w2, G.w2);
      v(p + "mlp.b2", L.bb2, G.bb2, ParamRole::Bias);
    }
    v("ln_f.weight", gf_, ggf_, ParamRole::Norm);
    v("ln_f.bias", bf_, gbf_, ParamRole::Norm);
    m("head.weight", head_, ghead_, ParamRole::Head);
    return ps;
  }

  double train_step(int step) override {
    auto r = stream(seed_, 3, step);
    std::vector<int> x, y;
    batch(r, 0, c_->split, cfg_.batch, x, y);
    return forward_backward(x, y, true);
  }

  double validate(double*) override {
    auto r = stream(12345, 4);  // the same validation batches for every run
    double sum = 0;
    for (int i = 0; i < cfg_.val_batches; ++i) {
      std::vector<int> x, y;
      batch(r, c_->split, c_->ids.size(), cfg_.batch, x, y);
      sum += forward_backward(x, y, false);
    }
    return sum / cfg_.val_batches;
  }

 private:
  static void zero_like(const Layer& L, Layer& G) {
    G.g1 = Vec::Zero(L.g1.size()), G.b1 = Vec::Zero(L.b1.size()), G.g2 = Vec::Zero(L.g2.size()), G.b2 = Vec::Zero(L.b2.size());
    G.bb1 = Vec::Zero(L.bb1.size()), G.bb2 = Vec::Zero(L.bb2.size());
    G.wq = Mat::Zero(L.wq.rows(), L.wq.cols()), G.wk = Mat::Zero(L.wk.rows(), L.wk.cols()), G.wv = Mat::Zero(L.wv.rows(), L.wv.cols());
    G.wo = Mat::Zero(L.wo.rows(), L.wo.cols()), G.w1 = Mat::Zero(L.w1.rows(), L.w1.cols()), G.w2 = Mat::Zero(L.w2.rows(), L.w2.cols());
  }

  void batch(std::mt19937_64& r, size_t lo, size_t hi, int n, std::vector<int>& x, std::vector<int>& y) const {
    const int T = cfg_.ctx;
    std::uniform_int_distribution<size_t> at(lo, hi - T - 1);
    x.resize(size_t(n) * T);
    y.resize(size_t(n) * T);
    for (int b = 0; b < n; ++b) {
      size_t s = at(r);
      for (int t = 0; t < T; ++t) {
        x[size_t(b) * T + t] = c_->ids[s + t];
        y[size_t(b) * T + t] = c_->ids[s + t + 1];
      }
    }
  }

  // Mean cross-entropy of the batch; with `grad`, the gradients of every parameter.
  double forward_backward(const std::vector<int>& ids, const std::vector<int>& targets, bool grad) {
    const int T = cfg_.ctx, d = cfg_.d, H = cfg_.heads, hd = d / H, B = int(ids.size()) / T, N = B * T;
    const float scale = 1.f / std::sqrt(float(hd));
    Mat x(N, d);
    for (int n = 0; n < N; ++n) x.row(n) = tok_.row(ids[n]) + pos_.row(n % T);
    std::vector<LayerCache> cache(cfg_.layers);
    for (int l = 0; l < cfg_.layers; ++l) {
      auto& L = layers_[l];
      auto& C = cache[l];
      C.x = x;
      layer_norm(x, L.g1, L.b1, C.h, C.xhat1, C.rstd1);
      C.q = product_of(C.h, L.wq);
      C.k = product_of(C.h, L.wk);
      C.v = product_of(C.h, L.wv);
      C.o.resize(N, d);
      C.p.resize(size_t(B) * H);
      // one head a thread: its products run whole on that thread (support/eigen_product.h)
#pragma omp parallel for collapse(2) schedule(static)
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h) {
          Mat s = product_of(C.q.block(b * T, h * hd, T, hd), C.k.block(b * T, h * hd, T, hd).transpose()) * scale;
          Mat& p = C.p[size_t(b) * H + h];
          p.setZero(T, T);
          for (int i = 0; i < T; ++i) {
            float mx = s.row(i).head(i + 1).maxCoeff();
            p.row(i).head(i + 1) = (s.row(i).head(i + 1).array() - mx).exp();
            p.row(i).head(i + 1) /= p.row(i).head(i + 1).sum();
          }
          product_into(C.o.block(b * T, h * hd, T, hd), p, C.v.block(b * T, h * hd, T, hd));
        }
      C.x1 = x + product_of(C.o, L.wo);
      layer_norm(C.x1, L.g2, L.b2, C.h2, C.xhat2, C.rstd2);
      C.u = product_of(C.h2, L.w1).rowwise() + L.bb1.transpose();
      C.gu = C.u.unaryExpr([](float u) { return gelu(u); });
      x = C.x1 + (product_of(C.gu, L.w2).rowwise() + L.bb2.transpose());
    }
    Mat hf, xhatf;
    Vec rstdf;
    layer_norm(x, gf_, bf_, hf, xhatf, rstdf);
    Mat G;
    double loss = softmax_xent(product_of(hf, head_), targets, grad ? &G : nullptr);
    if (!grad) return loss;

    product_into(ghead_, hf.transpose(), G);
    ggf_.setZero();
    gbf_.setZero();
    Mat dx = layer_norm_back(product_of(G, head_.transpose()), xhatf, rstdf, gf_, ggf_, gbf_);
    for (int l = cfg_.layers - 1; l >= 0; --l) {
      auto& L = layers_[l];
      auto& D = grads_[l];
      auto& C = cache[l];
      // MLP
      product_into(D.w2, C.gu.transpose(), dx);
      D.bb2 = dx.colwise().sum().transpose();
      Mat du = product_of(dx, L.w2.transpose()).cwiseProduct(C.u.unaryExpr([](float u) { return gelu_grad(u); }));
      product_into(D.w1, C.h2.transpose(), du);
      D.bb1 = du.colwise().sum().transpose();
      D.g2.setZero();
      D.b2.setZero();
      Mat dx1 = dx + layer_norm_back(product_of(du, L.w1.transpose()), C.xhat2, C.rstd2, L.g2, D.g2, D.b2);
      // attention
      product_into(D.wo, C.o.transpose(), dx1);
      Mat dO = product_of(dx1, L.wo.transpose());
      Mat dq(N, d), dk(N, d), dv(N, d);
#pragma omp parallel for collapse(2) schedule(static)
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h) {
          const Mat& p = C.p[size_t(b) * H + h];
          Mat dOb = dO.block(b * T, h * hd, T, hd);
          Mat dp = product_of(dOb, C.v.block(b * T, h * hd, T, hd).transpose());
          product_into(dv.block(b * T, h * hd, T, hd), p.transpose(), dOb);
          Vec rs = dp.cwiseProduct(p).rowwise().sum();
          Mat ds = p.cwiseProduct(dp.colwise() - rs) * scale;
          product_into(dq.block(b * T, h * hd, T, hd), ds, C.k.block(b * T, h * hd, T, hd));
          product_into(dk.block(b * T, h * hd, T, hd), ds.transpose(), C.q.block(b * T, h * hd, T, hd));
        }
      product_into(D.wq, C.h.transpose(), dq);
      product_into(D.wk, C.h.transpose(), dk);
      product_into(D.wv, C.h.transpose(), dv);
      D.g1.setZero();
      D.b1.setZero();
      Mat dh = product_of(dq, L.wq.transpose());
      product_into(dh, dk, L.wk.transpose(), 1.f, true);
      product_into(dh, dv, L.wv.transpose(), 1.f, true);
      dx = dx1 + layer_norm_back(dh, C.xhat1, C.rstd1, L.g1, D.g1, D.b1);
    }
    gtok_.setZero();
    gpos_.setZero();
    for (int n = 0; n < N; ++n) {
      gtok_.row(ids[n]) += dx.row(n);
      gpos_.row(n % T) += dx.row(n);
    }
    return loss;
  }

  std::shared_ptr<const Corpus> c_;
  GptConfig cfg_;
  uint64_t seed_;
  Mat tok_, pos_, head_, gtok_, gpos_, ghead_;
  std::vector<Layer> layers_, grads_;
  Vec gf_, bf_, ggf_, gbf_;
};

class Gpt : public Workload {
 public:
  Gpt(std::shared_ptr<const Corpus> c, GptConfig cfg, const WorkloadOptions& o, std::string source)
      : c_(std::move(c)), cfg_(cfg), steps_(o.steps ? o.steps : 300), every_(o.eval_every ? o.eval_every : 50), source_(std::move(source)) {}
  std::string name() const override { return "gpt"; }
  std::string describe() const override {
    return fmt::format(
        "char-level GPT ({} layers, d {}, {} heads, context {}, vocab {}) on {}, batch {}, {} steps; validation {} batches of held-out text",
        cfg_.layers, cfg_.d, cfg_.heads, cfg_.ctx, c_->vocab, source_, cfg_.batch, steps_, cfg_.val_batches);
  }
  int steps() const override { return steps_; }
  int eval_every() const override { return every_; }
  std::unique_ptr<WorkloadRun> start(uint64_t seed) const override { return std::make_unique<GptRun>(c_, cfg_, seed); }

 private:
  std::shared_ptr<const Corpus> c_;
  GptConfig cfg_;
  int steps_, every_;
  std::string source_;
};

}  // namespace

std::unique_ptr<Workload> make_gpt_from_text(const std::string& text, const GptConfig& cfg, const WorkloadOptions& opts) {
  if (cfg.d % cfg.heads != 0) throw Error(fmt::format("gpt: d {} is not a multiple of heads {}", cfg.d, cfg.heads));
  if (text.size() < size_t(cfg.ctx) * 20)
    throw Error(fmt::format("gpt: the corpus has {} characters; it needs at least {}", text.size(), cfg.ctx * 20));
  return std::make_unique<Gpt>(make_corpus(text), cfg, opts, "an in-memory text");
}

std::unique_ptr<Workload> make_gpt(const WorkloadOptions& opts) {
  std::string path = opts.data_dir + "/brown.txt";
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const Corpus>> cache;
  std::shared_ptr<const Corpus> c;
  {
    std::lock_guard lock(mu);
    if (auto it = cache.find(path); it != cache.end()) c = it->second;
  }
  if (!c) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(fmt::format("`{}` is missing: run scripts/prepare_brown.sh (it fetches the Brown corpus)", path));
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().size() < 100000)
      throw Error(fmt::format("`{}` holds {} bytes; expected the whole Brown corpus (rerun scripts/prepare_brown.sh)", path, ss.str().size()));
    c = make_corpus(ss.str());
    std::lock_guard lock(mu);
    cache[path] = c;
  }
  return std::make_unique<Gpt>(c, GptConfig{}, opts, "the Brown corpus");
}

}  // namespace opal::workloads
