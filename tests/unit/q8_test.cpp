// Blockwise 8-bit state (issue 17, item 4): bitsandbytes' dynamic code (support/q8.h),
// quantized inside the fused kernels block by block; the scales as named slots; checkpoints
// and reports at the real storage; conversions between q8, bf16 and f32 state on load.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "driver/build.h"
#include "driver/routes.h"
#include "runtime/checkpoint.h"
#include "runtime/error.h"
#include "runtime/optimizer.h"
#include "runtime/safetensors.h"
#include "support/q8.h"

#include "error_of.h"
#include "scratch.h"
#include "values.h"

using namespace opal;
using opal::testing::numel;
using opal::testing::randoms;
using opal::testing::same_bits;

namespace {

// The host quantizer over each matrix of m elements: codes (as floats 0..255) and scales.
std::pair<std::vector<float>, std::vector<float>> host_q8(const std::vector<float>& x, size_t m, int block) {
  std::vector<unsigned char> c(x.size());
  std::vector<float> s(x.size() / m * q8::blocks(m, block));
  for (size_t b = 0; b < x.size() / m; ++b) q8::quantize(x.data() + b * m, m, block, c.data() + b * m, s.data() + b * q8::blocks(m, block));
  return {std::vector<float>(c.begin(), c.end()), s};
}

std::vector<float> host_deq(const std::vector<float>& codes, const std::vector<float>& scales, size_t m, int block) {
  std::vector<float> out(codes.size());
  for (size_t e = 0; e < codes.size(); ++e)
    out[e] = q8::opal_ld_q8((unsigned char)codes[e], scales[e / m * q8::blocks(m, block) + e % m / size_t(block)]);
  return out;
}

// A state that accumulates the gradient (`m = m + u`), stored as `storage`: the kernel loads the
// codes, adds in f32 and quantizes the sums, which the host can redo exactly.
std::string accumulate_spec(const std::string& storage) {
  return fmt::format(
      "component acc() {{\n  state m{} = zeros\n  m = m + u\n  u = m\n}}\n"
      "optimizer o(lr = 0.01) {{\n  \"c\" view(batch): acc -> scale(lr)\n  other: acc -> scale(lr)\n}}\n",
      storage.empty() ? "" : ": " + storage);
}

// Parameters for every loop shape: a partial last block, the thread pool's size (65536 and
// more), a tiny vector, and a view with a matrix per index (blocks restart at each matrix).
const std::vector<ParamDesc> kParams = {{"w", {37, 29}}, {"big", {300, 300}}, {"b", {5}}, {"c", {3, 7, 11}}};
size_t matrix_elements(const ParamDesc& p) { return p.name == "c" ? 77 : numel(p.shape); }

}  // namespace

TEST_SUITE("q8") {
TEST_CASE("the dynamic code: bitsandbytes' signed and unsigned maps, ascending, with 0 and 1") {
  const float* s = q8::opal_q8_tab;
  const float* u = q8::opal_q8_tab + 256;
  for (int i = 1; i < 256; ++i) {
    CHECK(s[i - 1] < s[i]);
    CHECK(u[i - 1] < u[i]);
  }
  CHECK(s[127] == 0.f);
  CHECK(s[255] == 1.f);
  CHECK(u[0] == 0.f);
  CHECK(u[255] == 1.f);
  // the extremes: seven decades, from the first decade's smallest midpoint to the last's largest
  CHECK(s[128] == doctest::Approx(0.55e-6).epsilon(1e-6));  // 1e-6 * (0.1 + 1) / 2
  CHECK(u[1] == doctest::Approx(0.325e-6).epsilon(1e-6));   // 1e-6 * (0.1 + 0.55) / 2
  CHECK(s[0] == doctest::Approx(-(0.1 + 0.9 * 63 / 64 + 1) / 2).epsilon(1e-6));
  CHECK(u[254] == doctest::Approx((0.1 + 0.9 * 127 / 128 + 1) / 2).epsilon(1e-6));
  for (int i = 0; i < 255; ++i) CHECK(s[i] == -s[254 - i]);  // symmetric about 0 (but for 1)
  // every code is its own nearest value
  for (int i = 0; i < 256; ++i) {
    CHECK(q8::opal_q8_enc(u[i], 1.f, 0) == i);
    if (i < 255) CHECK(q8::opal_q8_enc(s[i], 1.f, 1) == i);
  }
  CHECK(q8::opal_q8_enc(1.f, 1.f, 1) == 255);
  CHECK(q8::opal_q8_enc(-1.f, 1.f, 1) == 0);  // -1 has no code: -0.993's
}

TEST_CASE("the arithmetic search finds the nearest code, as a full search of the table does") {
  for (int u = 0; u < 2; ++u) {
    // the positive half: positions 0 (value 0) to top (value 1)
    const float* v = q8::opal_q8_tab + (u ? 256 : 127);
    const int top = u ? 255 : 128;
    auto nearest = [&](float x) {
      int best = 0;
      for (int p = 1; p <= top; ++p)
        if (std::fabs(double(x) - v[p]) < std::fabs(double(x) - v[best])) best = p;
      return best;
    };
    CAPTURE(u);
    for (int p = 0; p < top; ++p) {
      CAPTURE(p);
      const double mid = (double(v[p]) + v[p + 1]) / 2;
      const bool edge = p == 0 || p + 1 == top || std::bit_width(unsigned(p + u)) != std::bit_width(unsigned(p + 1 + u));
      if (edge) {
        // between decades (and at 0 and 1) the threshold is a constant: exact to the float
        const float t = float(mid);
        CHECK(q8::opal_q8_pos(std::nextafter(t, 0.f), u) == p);
        CHECK(q8::opal_q8_pos(std::nextafter(t, 2.f), u) == p + 1);
      } else {
        // within a decade the cell arithmetic: exact but for the last bits
        CHECK(q8::opal_q8_pos(float(mid * (1 - 1e-6)), u) == p);
        CHECK(q8::opal_q8_pos(float(mid * (1 + 1e-6)), u) == p + 1);
      }
    }
    CHECK(q8::opal_q8_pos(0.f, u) == 0);
    CHECK(q8::opal_q8_pos(1e-30f, u) == 0);
    CHECK(q8::opal_q8_pos(1.f, u) == top);
    CHECK(q8::opal_q8_pos(1.0000001f, u) == top);
    CHECK(q8::opal_q8_pos(std::numeric_limits<float>::infinity(), u) == top);
    CHECK(q8::opal_q8_pos(std::numeric_limits<float>::quiet_NaN(), u) == 0);
    // log-uniform samples: the code found is as near as the nearest, to 1e-6 relative
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> lg(-25.f, 0.f);
    int exact = 0;
    for (int i = 0; i < 100000; ++i) {
      const float x = std::min(1.f, std::exp2(lg(rng)));
      const int got = q8::opal_q8_pos(x, u), want = nearest(x);
      exact += got == want;
      CAPTURE(x);
      REQUIRE(std::fabs(double(x) - v[got]) <= std::fabs(double(x) - v[want]) + 1e-6 * x);
    }
    CHECK(exact >= 99990);
  }
}

TEST_CASE("quantizing: within half a code's gap of the block's absmax; each block picks its code by sign; non-finite sticks") {
  float gap_s = 0, gap_u = 0;
  for (int i = 1; i < 256; ++i) {
    gap_s = std::max(gap_s, q8::opal_q8_tab[i] - q8::opal_q8_tab[i - 1]);
    gap_u = std::max(gap_u, q8::opal_q8_tab[256 + i] - q8::opal_q8_tab[255 + i]);
  }
  std::vector<float> x = randoms(1000, 5, 2.f);
  for (size_t i = 256; i < 512; ++i) x[i] = std::abs(x[i]);  // one block with no negative value
  for (size_t i = 512; i < 768; ++i) x[i] = 0.f;             // one of zeros
  const auto [codes, scales] = host_q8(x, x.size(), 256);
  REQUIRE(scales.size() == 4);
  CHECK(scales[0] < 0);   // signed code
  CHECK(scales[1] > 0);   // unsigned code
  CHECK(scales[2] == 0);  // all zero
  CHECK(scales[3] < 0);
  const auto back = host_deq(codes, scales, x.size(), 256);
  for (size_t i = 0; i < x.size(); ++i) {
    const float amax = std::abs(scales[i / 256]), gap = scales[i / 256] < 0 ? gap_s : gap_u;
    CAPTURE(i);
    CHECK(std::abs(back[i] - x[i]) <= 0.5f * gap * amax * 1.0001f);
  }
  CHECK(back[300] > 0);
  for (size_t i = 512; i < 768; ++i) CHECK(back[i] == 0.f);
  // the block's largest magnitude comes back exactly when positive (code 1)
  std::vector<float> y = {0.5f, 3.f, 1e-3f};
  const auto [yc, ys] = host_q8(y, 3, 32);
  CHECK(host_deq(yc, ys, 3, 32)[1] == 3.f);
  // a NaN or infinity makes its whole block non-finite, never a finite lie
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> z = randoms(64, 9, 1.f);
    z[10] = bad;
    const auto [zc, zs] = host_q8(z, 64, 32);
    CHECK(!std::isfinite(zs[0]));
    CHECK(std::isfinite(zs[1]));
    const auto zb = host_deq(zc, zs, 64, 32);
    for (int i = 0; i < 32; ++i) CHECK(!std::isfinite(zb[size_t(i)]));
    for (int i = 32; i < 64; ++i) CHECK(std::isfinite(zb[size_t(i)]));
  }
}

TEST_CASE("the fused kernels store what the host quantizer gives, bit for bit, for every loop shape and block size") {
  for (int block : {32, 64, 256, 4096}) {
    CAPTURE(block);
    auto opt = make_optimizer(compile_spec({accumulate_spec(fmt::format("q8({})", block)), "", ""}), kParams);
    std::map<std::string, std::vector<float>> m;  // the host's f32 sums of dequantized state and gradient
    for (const auto& p : kParams) m[p.name].assign(numel(p.shape), 0.f);
    for (int s = 0; s < 3; ++s) {
      for (size_t i = 0; i < kParams.size(); ++i) {
        const auto& p = kParams[i];
        std::vector<float> gv = randoms(numel(p.shape), unsigned(10 * s + i), 0.5f);
        if (s == 1)
          for (float& x : gv) x = std::abs(x);  // blocks turning unsigned, then signed again
        opt->write_grad(p.name, gv);
        auto& mv = m[p.name];
        for (size_t e = 0; e < mv.size(); ++e) mv[e] = mv[e] + gv[e];
      }
      opt->step();
      for (const auto& p : kParams) {
        CAPTURE(p.name);
        CAPTURE(s);
        const size_t mm = matrix_elements(p);
        auto [codes, scales] = host_q8(m[p.name], mm, block);
        REQUIRE(opt->state_dtype(p.name, "acc.m") == DType::Q8);
        CHECK(same_bits(opt->read_state(p.name, "acc.m"), codes));
        CHECK(same_bits(opt->read_state(p.name, "acc.m.absmax"), scales));
        m[p.name] = host_deq(codes, scales, mm, block);  // what the next step loads
        CHECK(same_bits(opt->read_state_values(p.name, "acc.m"), m[p.name]));
      }
    }
    // the scales' shape: one per block of each matrix
    CHECK(opt->state_shape("c", "acc.m.absmax") == std::vector<int64_t>{3, int64_t(q8::blocks(77, block))});
    CHECK(opt->state_shape("w", "acc.m") == std::vector<int64_t>{37, 29});
  }
}

TEST_CASE("a q8 state written under every(N) keeps its bytes on the steps that skip the write") {
  // quantizing a dequantized block again is not exact (the signed code has no -1): a skipped
  // write must leave the codes and scales as they are, not re-encode them
  const char* spec =
      "component lazy() {\n  state m: q8(32) = zeros\n  every(3) {\n    m = m + u\n  }\n  u = m\n}\n"
      "optimizer o(lr = 0.01) {\n  other: lazy -> scale(lr)\n}\n";
  auto opt = make_optimizer(compile_spec({spec, "", ""}), {{"w", {1000}}});
  std::vector<float> m(1000, 0.f);
  int kept = 0, written = 0;
  for (int s = 0; s < 9; ++s) {
    const auto before_codes = opt->read_state("w", "lazy.m"), before_scales = opt->read_state("w", "lazy.m.absmax");
    const auto gv = randoms(1000, unsigned(s + 40), 1.f);
    opt->write_grad("w", gv);
    opt->step();
    const auto codes = opt->read_state("w", "lazy.m"), scales = opt->read_state("w", "lazy.m.absmax");
    CAPTURE(s);
    if (same_bits(codes, before_codes) && same_bits(scales, before_scales)) {
      ++kept;
      continue;
    }
    ++written;
    for (size_t e = 0; e < m.size(); ++e) m[e] = m[e] + gv[e];
    const auto [want_codes, want_scales] = host_q8(m, 1000, 32);
    CHECK(same_bits(codes, want_codes));
    CHECK(same_bits(scales, want_scales));
    m = host_deq(want_codes, want_scales, 1000, 32);
  }
  CHECK(written == 4);  // every(3) writes after steps 1, 3, 6 and 9
  CHECK(kept == 5);
}

TEST_CASE("q8 state: a route's state(q8) stores its parameter-shaped slots; bytes reported at one per element") {
  const char* spec =
      "optimizer o(lr = 0.02) {\n"
      "  \"h*\" state(q8): muon(lr = lr)\n"
      "  \"f*\" state(q8(128)): adafactor(lr = lr)\n"
      "  other state(q8): adamw(lr = lr)\n"
      "}\n";
  auto compiled = compile_spec({spec, "", ""});
  auto opt = make_optimizer(compiled, {{"h.w", {16, 8}}, {"f.w", {16, 8}}, {"b", {300}}});
  CHECK(opt->state_dtype("h.w", "momentum.m") == DType::Q8);
  CHECK(opt->state_dtype("b", "momentum.m") == DType::Q8);
  CHECK(opt->state_dtype("b", "adapt.v") == DType::Q8);
  CHECK(opt->state_shape("b", "adapt.v.absmax") == std::vector<int64_t>{2});
  // Adafactor's factored state is per row and column: it stays f32
  for (const auto& slot : opt->slots("f.w")) {
    CAPTURE(slot);
    CHECK(opt->state_dtype("f.w", slot) == DType::F32);
  }
  const std::string report = format_routes(describe_routes(*opt, *compiled));
  CHECK(report.find("momentum.m [300] q8") != std::string::npos);
  CHECK(report.find("momentum.m.absmax [2]") != std::string::npos);
  for (int s = 0; s < 4; ++s) {
    opt->write_grad("h.w", randoms(128, unsigned(s), 0.1f));
    opt->write_grad("f.w", randoms(128, unsigned(s + 9), 0.1f));
    opt->write_grad("b", randoms(300, unsigned(s + 5), 0.1f));
    opt->step();
  }
  for (const char* n : {"h.w", "f.w", "b"})
    for (float x : opt->read_param(n)) CHECK(std::isfinite(x));
  // host views: the codes are not floats
  CHECK(error_of([&] { opt->state("b", "adapt.v"); }).find("is stored as q8") != std::string::npos);
  CHECK(error_of([&] { opt->write_state("b", "adapt.v", std::vector<float>(300, 256.f)); }).find("whole numbers from 0 to 255") != std::string::npos);
  CHECK(error_of([&] { opt->write_state("b", "adapt.v", std::vector<float>(300, 1.5f)); }).find("element 0 is 1.5") != std::string::npos);
}

TEST_CASE("q8 AdamW tracks f32 AdamW on a least-squares problem") {
  // W (16 x 48) fits Y = X A; the gradient is exact.
  const int rows = 16, cols = 48, batch = 64;
  std::vector<float> A = randoms(size_t(rows * cols), 1, 1.f), X = randoms(size_t(batch * rows), 2, 1.f);
  auto loss_and_grad = [&](const std::vector<float>& W, std::vector<float>& G) {
    double loss = 0;
    std::fill(G.begin(), G.end(), 0.f);
    for (int b = 0; b < batch; ++b)
      for (int j = 0; j < cols; ++j) {
        double r = 0;
        for (int i = 0; i < rows; ++i) r += double(X[size_t(b * rows + i)]) * (W[size_t(i * cols + j)] - A[size_t(i * cols + j)]);
        loss += r * r / batch;
        for (int i = 0; i < rows; ++i) G[size_t(i * cols + j)] += float(2 * r * X[size_t(b * rows + i)] / batch);
      }
    return loss;
  };
  auto run = [&](const char* storage) {
    auto opt = make_optimizer(compile_spec({fmt::format("optimizer o(lr = 0.02) {{\n  other{}: adamw(lr = lr, wd = 0)\n}}\n", storage), "", ""}),
                              {{"W", {rows, cols}}});
    std::vector<float> G(size_t(rows * cols)), losses;
    for (int s = 0; s < 300; ++s) {
      losses.push_back(float(loss_and_grad(opt->read_param("W"), G)));
      opt->write_grad("W", G);
      opt->step();
    }
    return losses;
  };
  // the losses fall exponentially; q8 state costs a few percent of the steps to each level
  const auto f32 = run(""), q8 = run(" state(q8)");
  CHECK(q8.back() < 1e-3f * q8.front());
  for (size_t s = 50; s < f32.size(); s += 50) {
    size_t reached = 0;
    while (reached < q8.size() && q8[reached] > f32[s]) ++reached;
    CAPTURE(s);
    CHECK(reached <= s + s / 10);
  }
}

TEST_CASE("q8 storage errors: block sizes, shapes, matrix operands") {
  auto compile_error = [](const std::string& spec) {
    try {
      compile_spec({spec, "", ""});
    } catch (const CompileError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(compile_error(accumulate_spec("q8(100)")).find("a power of two from 32 to 4096") != std::string::npos);
  CHECK(compile_error(accumulate_spec("q8(8192)")).find("a power of two from 32 to 4096") != std::string::npos);
  CHECK(compile_error(accumulate_spec("q9")).find("did you mean `q8`?") != std::string::npos);
  CHECK(compile_error("component r() {\n  state s: q8 = zeros(rows)\n  s = row_sum(u * u)\n  u = u / (sqrt(s) + 1)\n}\n"
                      "optimizer o(lr = 0.1) {\n  matrix: r -> scale(lr)\n}\n")
            .find("q8 stores parameter-shaped state") != std::string::npos);
  CHECK(compile_error("component mm() {\n  state m: q8 = zeros\n  let old = m\n  m = u\n  u = (u @ transpose(old)) @ u\n}\n"
                      "optimizer o(lr = 0.1) {\n  matrix: mm -> scale(lr)\n}\n")
            .find("is stored as q8, but") != std::string::npos);
}

TEST_CASE("checkpoints keep q8 codes and scales by name; q8, bf16 and f32 state load into each other, converted and reported") {
  const std::string dir = testing::scratch("q8-ckpt");
  const std::vector<ParamDesc> ps = {{"w", {20, 30}}, {"c", {3, 7, 11}}};
  auto make = [&](const std::string& storage) { return make_optimizer(compile_spec({accumulate_spec(storage), "", ""}), ps); };
  auto q = make("q8(64)");
  for (const auto& p : ps) q->write_grad(p.name, randoms(numel(p.shape), 3, 0.5f));
  q->step();
  q->save(dir + "/q8.safetensors");
  const SafetensorsFile f = read_safetensors(dir + "/q8.safetensors");
  CHECK(f.tensors.at("state/w/acc.m").dtype == "U8");
  CHECK(f.tensors.at("state/w/acc.m.absmax").dtype == "F32");
  // the same storage: the same bytes
  auto same = make("q8(64)");
  LoadReport r = same->load(dir + "/q8.safetensors");
  CHECK(r.converted.empty());
  for (const auto& p : ps)
    for (const char* slot : {"acc.m", "acc.m.absmax"}) CHECK(same_bits(same->read_state(p.name, slot), q->read_state(p.name, slot)));
  // into f32 state: dequantized
  auto f32 = make("");
  r = f32->load(dir + "/q8.safetensors");
  CHECK(r.summary().find("w/acc.m (q8(64) -> F32)") != std::string::npos);
  CHECK(!r.spec_changed);  // the same spec at another storage (the scales slots are storage too)
  CHECK(program_hash(*f32) == program_hash(*q));
  for (const auto& p : ps) CHECK(same_bits(f32->read_state(p.name, "acc.m"), q->read_state_values(p.name, "acc.m")));
  // into another block size: dequantized and quantized again
  auto q256 = make("q8(256)");
  CHECK(q256->load(dir + "/q8.safetensors").summary().find("(q8(64) -> q8(256))") != std::string::npos);
  for (const auto& p : ps) {
    const size_t mm = p.name == "c" ? 77 : 600;
    const auto [codes, scales] = host_q8(q->read_state_values(p.name, "acc.m"), mm, 256);
    CHECK(same_bits(q256->read_state(p.name, "acc.m"), codes));
    CHECK(same_bits(q256->read_state(p.name, "acc.m.absmax"), scales));
  }
  // and from f32 and bf16 state: quantized
  f32->write_grad("w", randoms(600, 4, 0.5f));
  f32->write_grad("c", randoms(231, 5, 0.5f));
  f32->step();
  f32->save(dir + "/f32.safetensors");
  auto back = make("q8(64)");
  r = back->load(dir + "/f32.safetensors");
  CHECK(r.summary().find("w/acc.m (F32 -> q8(64))") != std::string::npos);
  CHECK(r.initialized.empty());
  CHECK(!r.spec_changed);
  {  // so a slot missing from a checkpoint at another storage is an error, not initialized
    SafetensorsFile g = read_safetensors(dir + "/f32.safetensors");
    g.tensors.erase("state/c/acc.m");
    auto q64 = make("q8(64)");
    CHECK(error_of([&] { apply_load(*q64, prepare_load(*q64, g, "partial")); }).find("state `c/acc.m` is missing") != std::string::npos);
    CHECK(q64->step_count() == 0);
  }
  {
    const auto [codes, scales] = host_q8(f32->read_state("w", "acc.m"), 600, 64);
    CHECK(same_bits(back->read_state("w", "acc.m"), codes));
    CHECK(same_bits(back->read_state("w", "acc.m.absmax"), scales));
  }
  auto bf = make("bf16");
  bf->load(dir + "/q8.safetensors");
  bf->save(dir + "/bf16.safetensors");
  CHECK(make("q8(64)")->load(dir + "/bf16.safetensors").summary().find("(BF16 -> q8(64))") != std::string::npos);
  // hostile files: codes without their scales, or without their q8 entry, or scales that do
  // not tile the codes; each refused, the optimizer unchanged
  const auto before = same->read_state("w", "acc.m");
  auto broken = [&](auto&& edit) {
    SafetensorsFile g = f;
    edit(g);
    return error_of([&] { apply_load(*same, prepare_load(*same, g, "broken")); });
  };
  CHECK(broken([](SafetensorsFile& g) { g.tensors.erase("state/w/acc.m.absmax"); }).find("without their scales") != std::string::npos);
  CHECK(broken([](SafetensorsFile& g) {
          g.tensors["state/w/acc.m.absmax"].values.pop_back(), g.tensors["state/w/acc.m.absmax"].shape = {9};
        }).find("do not give") != std::string::npos);
  CHECK(broken([](SafetensorsFile& g) {
          auto params = nlohmann::json::parse(g.metadata["opal.params"]);
          for (auto& e : params) e.erase("q8");
          g.metadata["opal.params"] = params.dump();
        }).find("has no q8 entry") != std::string::npos);
  CHECK(broken([](SafetensorsFile& g) {
          auto params = nlohmann::json::parse(g.metadata["opal.params"]);
          params[0]["q8"]["acc.m"] = {100, 600};
          g.metadata["opal.params"] = params.dump();
        }).find("malformed q8 entry") != std::string::npos);
  CHECK(same_bits(same->read_state("w", "acc.m"), before));
  // a U8 tensor written with something other than codes is refused at save
  SafetensorsFile bad;
  bad.tensors["x"] = {{1}, {256.f}, "U8"};
  CHECK(error_of([&] { serialize_safetensors(bad); }).find("cannot write tensor `x` as U8") != std::string::npos);
}
}  // TEST_SUITE
