// Mixed precision (issue 17): f32, bf16 and f16 parameters and gradients, in any combination,
// stepped in place (elementwise routes) or through staged f32 copies (routes with matrix work);
// the 16-bit formats' conversions; stochastic rounding (unbiased, reproducible, keyed per
// tensor); and the weight-decay pitfall it exists for.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "driver/build.h"
#include "driver/routes.h"
#include "runtime/checkpoint.h"
#include "runtime/safetensors.h"
#include "runtime/error.h"
#include "runtime/nonfinite.h"
#include "runtime/optimizer.h"
#include "support/half.h"

#include "error_of.h"
#include "scratch.h"
#include "values.h"

using namespace opal;
using opal::testing::numel;
using opal::testing::randoms;
using opal::testing::same_bits;

namespace {

float to_dtype(float x, DType dt) {
  if (dt == DType::BF16) return half::opal_ld_bf16(half::opal_to_bf16(x, 0, 0, 0, 0));
  if (dt == DType::F16) return half::opal_ld_f16(half::opal_to_f16(x));
  return x;
}

std::vector<float> rounded(std::vector<float> v, DType dt) {
  for (float& x : v) x = to_dtype(x, dt);
  return v;
}

// `spec` stepped on parameters stored as `w` with gradients stored as `g`, against the f32
// program stepped on f32 copies whose parameters are rounded to `w` after every step and whose
// gradients hold `g`'s values: the same bits, parameters and state.
const std::vector<ParamDesc> kShapes = {{"h.weight", {12, 20}}, {"h.bias", {20}}, {"wte", {30, 12}, nullptr, nullptr, false, ParamRole::Embedding}};

void check_against_rounded_reference(const std::string& spec, DType w, DType g, int steps, const std::vector<ParamDesc>& shapes = kShapes) {
  CAPTURE(spec);
  INFO("w ", exec::dtype_name(w), ", g ", exec::dtype_name(g));
  auto compiled = compile_spec({spec, "", ""});
  std::vector<ParamDesc> low = shapes;
  for (auto& p : low) {
    p.dtype = w;
    p.grad_dtype = g;
  }
  auto a = make_optimizer(compiled, low);
  auto ref = make_optimizer(compiled, shapes);
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto w0 = rounded(randoms(numel(shapes[i].shape), unsigned(i + 1), 0.5f), w);
    a->write_param(shapes[i].name, w0);
    ref->write_param(shapes[i].name, w0);
  }
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      const auto gv = randoms(numel(shapes[i].shape), unsigned(100 * s + i), 0.1f);
      a->write_grad(shapes[i].name, gv);  // rounded to g's storage
      ref->write_grad(shapes[i].name, rounded(gv, g));
    }
    a->step();
    ref->step();
    for (const auto& p : shapes) ref->write_param(p.name, rounded(ref->read_param(p.name), w));
  }
  for (const auto& p : shapes) {
    CAPTURE(p.name);
    CHECK(same_bits(a->read_param(p.name), ref->read_param(p.name)));
    for (const auto& slot : a->slots(p.name)) {
      CAPTURE(slot);
      CHECK(same_bits(a->read_state(p.name, slot), ref->read_state(p.name, slot)));
    }
  }
}

}  // namespace

TEST_SUITE("precision") {
TEST_CASE("f16 conversions: every half round-trips, and floats round to the nearest half, ties to even") {
  for (unsigned h = 0; h < 65536; ++h) {
    const float x = half::opal_ld_f16((unsigned short)h);
    if (std::isnan(x)) {
      CHECK(std::isnan(half::opal_ld_f16(half::opal_to_f16(x))));
      continue;
    }
    REQUIRE(half::opal_to_f16(x) == h);
  }
  CHECK(half::opal_ld_f16(0x3c00) == 1.0f);
  CHECK(half::opal_ld_f16(0x0001) == std::ldexp(1.0f, -24));  // the smallest subnormal
  CHECK(half::opal_ld_f16(0x7bff) == 65504.0f);
  CHECK(half::opal_to_f16(65519.0f) == 0x7bff);
  CHECK(half::opal_to_f16(65520.0f) == 0x7c00);                          // halfway to 2^16: rounds to infinity
  CHECK(half::opal_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);      // a tie: to even
  CHECK(half::opal_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // a tie: to even
  CHECK(half::opal_to_f16(std::ldexp(1.0f, -25)) == 0x0000);             // half the smallest subnormal: to even (zero)
  CHECK(half::opal_to_f16(std::ldexp(1.5f, -25)) == 0x0001);
  // random floats: the nearest of the two neighbours
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-70000.f, 70000.f);
  for (int i = 0; i < 100000; ++i) {
    const float x = i % 2 ? u(rng) : u(rng) * 1e-6f;
    const unsigned short h = half::opal_to_f16(x);
    const double got = half::opal_ld_f16(h);
    if (std::isinf(got)) {
      CHECK(std::abs(x) >= 65520.f);
      continue;
    }
    for (int d : {-1, 1}) {
      const double other = half::opal_ld_f16((unsigned short)(h + d));
      if (!std::isinf(other) && ((h & 0x7fff) != 0 || d == 1)) CHECK(std::abs(double(x) - got) <= std::abs(double(x) - other));
    }
  }
}

TEST_CASE("bf16 conversions round to nearest even as the Newton-Schulz rounding does, and keep NaN") {
  for (float x : {1.0f, 1.00390625f, 1.01171875f, 3.14159265f, -2.7182818f, 1e-40f, 3.3e38f, INFINITY, -INFINITY}) {
    CAPTURE(x);
    CHECK(half::opal_ld_bf16(half::opal_to_bf16(x, 0, 0, 0, 0)) == round_bf16(x));
  }
  CHECK(std::isnan(half::opal_ld_bf16(half::opal_to_bf16(NAN, 0, 0, 0, 0))));
  CHECK(std::isnan(half::opal_ld_bf16(half::opal_to_bf16(NAN, 1, 7, 3, 5))));
}

TEST_CASE("16-bit parameters and gradients step as the f32 program with the same roundings, bit for bit") {
  // elementwise specs step w and g in place; muon and soap stage f32 copies for their matrix work
  for (const char* spec : {"adamw", "lion", "adafactor", "muon", "soap"})
    for (auto [w, g] : {std::pair{DType::BF16, DType::BF16}, std::pair{DType::F16, DType::F16}, std::pair{DType::BF16, DType::F32},
                        std::pair{DType::F32, DType::BF16}})
      check_against_rounded_reference(spec, w, g, 4);
  // a view in another axis order (optax's Adafactor factors a conv weight's two largest axes,
  // 1 and 3 here): a permuted f32 copy, rounded back in the parameter's order
  const std::vector<ParamDesc> conv = {{"conv.weight", {2, 128, 3, 130}}};
  CHECK(make_optimizer(compile_spec({"adafactor_optax", "", ""}), conv)->route_of("conv.weight").find("where") == 0);
  check_against_rounded_reference("adafactor_optax", DType::BF16, DType::BF16, 3, conv);
}

TEST_CASE("stochastic rounding is unbiased, reproducible, and keyed by seed and tensor") {
  // w = 1, one SGD step of lr * g: the exact result lies between two bf16 values; rounded
  // stochastically, the mean error over 10^6 elements is within 3 standard errors of zero
  const size_t n = 1000000;
  auto run = [&](uint64_t seed, const std::string& name) {
    auto opt = make_optimizer(compile_spec({"sgd", "", ""}),
                              {{name, {1000, 1000}, nullptr, nullptr, false, ParamRole::None, DType::BF16, DType::F32}}, {}, {{"lr", 1.0}});
    opt->set_stochastic_rounding(true, seed);
    CHECK(opt->stochastic_rounding());
    opt->write_param(name, std::vector<float>(n, 1.0f));
    std::vector<float> g(n);
    for (size_t i = 0; i < n; ++i) g[i] = -std::ldexp(0.05f + 0.9f * float(i % 1000) / 1000.f, -7);  // 0.05 to 0.95 of an ulp at 1
    opt->write_grad(name, g);
    opt->step();
    return std::make_pair(opt->read_param(name), g);
  };
  auto [w, g] = run(1, "w");
  double err = 0, var = 0;
  const double ulp = std::ldexp(1.0, -7);
  size_t neighbours = 0, up = 0;
  for (size_t i = 0; i < n; ++i) {
    const double exact = 1.0 - double(g[i]);
    neighbours += w[i] == 1.0f || w[i] == float(1.0 + ulp);
    up += w[i] != 1.0f;
    err += double(w[i]) - exact;
    const double p = (exact - 1.0) / ulp;
    var += p * (1 - p) * ulp * ulp;
  }
  CHECK(neighbours == n);  // every element rounded to one of its two neighbours
  CHECK(up > n / 3);
  CHECK(up < 2 * n / 3);
  const double se = std::sqrt(var) / double(n);
  CHECK(std::abs(err / double(n)) < 3 * se);
  CHECK(se > 0);
  // and independent of a neighbour's, whose bits come from the same hash (offsets 0 to 2 mod
  // 4: a quarter of one splitmix64 each) or the next (3): the mean of (up_i - p_i)(up_i+1 -
  // p_i+1) is within 4 standard errors of zero. The same 16 bits for four elements would
  // correlate them (their p differ by a thousandth), and the mean above would not see it.
  for (size_t k = 0; k < 4; ++k) {
    CAPTURE(k);
    double cov = 0, cvar = 0;
    size_t pairs = 0;
    for (size_t i = k; i + 1 < n; i += 4) {
      const double p0 = -double(g[i]) / ulp, p1 = -double(g[i + 1]) / ulp;
      cov += (double(w[i] != 1.0f) - p0) * (double(w[i + 1] != 1.0f) - p1);
      cvar += p0 * (1 - p0) * p1 * (1 - p1);
      ++pairs;
    }
    CHECK(std::abs(cov / double(pairs)) < 4 * std::sqrt(cvar) / double(pairs));
  }
  CHECK(same_bits(w, run(1, "w").first));        // the same run again: the same bits
  CHECK_FALSE(same_bits(w, run(2, "w").first));  // another seed
  CHECK_FALSE(same_bits(w, run(1, "v").first));  // another tensor
}

TEST_CASE("weight decay below bf16's resolution: vanishes rounded to nearest, survives rounded stochastically") {
  // AdamW with a zero gradient decays w by lr * wd = 1e-5 per step: far below bf16's half ulp
  // (2^-9 at 1). In f32, 1000 steps take w from 1 to 0.99005.
  const size_t n = 20000;
  auto run = [&](DType dt, bool stochastic) {
    auto opt = make_optimizer(compile_spec({"adamw", "", ""}), {{"w", {int64_t(n)}, nullptr, nullptr, false, ParamRole::None, dt, dt}}, {},
                              {{"lr", 1e-3}, {"wd", 0.01}});
    opt->set_stochastic_rounding(stochastic, 5);
    opt->write_param("w", std::vector<float>(n, 1.0f));
    for (int s = 0; s < 1000; ++s) opt->step();
    double mean = 0;
    for (float x : opt->read_param("w")) mean += x;
    return mean / double(n);
  };
  const double f32 = run(DType::F32, false), nearest = run(DType::BF16, false), sr = run(DType::BF16, true);
  CHECK(f32 == doctest::Approx(std::pow(1 - 1e-5, 1000)).epsilon(1e-6));
  CHECK(nearest == 1.0);  // not one step of decay survived
  CHECK(sr == doctest::Approx(f32).epsilon(2e-4));
}

TEST_CASE("randn gives every tensor its own noise") {
  // two same-shaped tensors under a spec that adds noise: different updates (the kernel ABI
  // carries a tensor id)
  const char* spec = "component noise() {\n  u = randn()\n}\noptimizer o(lr = 0.1) {\n  other: noise -> scale(lr)\n}\n";
  auto opt = make_optimizer(compile_spec({spec, "", ""}), {{"a", {64}}, {"b", {64}}});
  opt->step();
  CHECK_FALSE(same_bits(opt->read_param("a"), opt->read_param("b")));
}

TEST_CASE("16-bit parameters: host views refuse, reads and writes convert, a gradient's dtype may change from bind to bind") {
  std::vector<unsigned short> w(8), g(8);
  std::vector<float> g32(8, 0.5f);
  for (auto& x : w) x = half::opal_to_bf16(1.0f, 0, 0, 0, 0);
  for (auto& x : g) x = half::opal_to_bf16(0.5f, 0, 0, 0, 0);
  auto opt = make_optimizer(compile_spec({"sgd", "", ""}), {{"w", {8}, w.data(), g.data(), true, ParamRole::None, DType::BF16, DType::BF16}}, {},
                            {{"lr", 0.5}, {"b1", 0.0}});
  CHECK(opt->param_dtype("w") == DType::BF16);
  CHECK(error_of([&] { opt->param("w"); }).find("is bf16, not f32") != std::string::npos);
  CHECK(error_of([&] { opt->grad("w"); }).find("is bf16, not f32") != std::string::npos);
  opt->step();
  CHECK(opt->read_param("w") == std::vector<float>(8, 0.75f));
  opt->bind("w", w.data(), g32.data(), DType::F32);  // an f32 gradient this time
  CHECK(opt->grad_dtype("w") == DType::F32);
  opt->step();
  CHECK(opt->read_param("w") == std::vector<float>(8, 0.5f));
  opt->write_param("w", std::vector<float>(8, 1.0f + 1.0f / 1024));  // rounds to nearest even
  CHECK(opt->read_param("w") == std::vector<float>(8, 1.0f));
  CHECK(half::opal_ld_bf16(w[3]) == 1.0f);  // in the host's memory, zero-copy
}

TEST_CASE("16-bit parameters under the non-finite policies: a raise undoes the step to the bit, zero steps on") {
  std::vector<unsigned short> w(32), g(32);
  for (size_t i = 0; i < w.size(); ++i) {
    w[i] = half::opal_to_bf16(0.25f * float(i), 0, 0, 0, 0);
    g[i] = half::opal_to_bf16(0.5f, 0, 0, 0, 0);
  }
  auto opt = make_optimizer(compile_spec({"adamw", "", ""}), {{"w", {4, 8}, w.data(), g.data(), true, ParamRole::None, DType::BF16, DType::BF16}});
  opt->set_nonfinite_policy(NonFinitePolicy::Raise);
  opt->step();
  const std::vector<unsigned short> after_one = w;
  const auto m = opt->read_state("w", "momentum.m");
  g[5] = half::opal_to_bf16(NAN, 0, 0, 0, 0);
  CHECK(error_of([&] { opt->step(); }).find("parameter `w`") != std::string::npos);
  CHECK(w == after_one);  // the parameter's 16-bit words, as they were
  CHECK(same_bits(opt->read_state("w", "momentum.m"), m));
  opt->set_nonfinite_policy(NonFinitePolicy::Zero);
  opt->step();  // the gradient is zeroed (+0 in bf16 too) and the parameter steps on it
  CHECK(g[5] == 0);
  CHECK(opt->step_count("w") == 2);
  for (unsigned short x : w) CHECK(std::isfinite(half::opal_ld_bf16(x)));
}

TEST_CASE("a 16-bit parameter whose new value overflows its storage counts as non-finite, stepped in place or staged") {
  // f16's largest finite value is 65504: w = 65000 moved up by more than 520 is a finite f32
  // value stored as Inf. An elementwise route stores it in its kernel; a matrix route steps f32
  // copies and rounds them into the parameter afterwards.
  for (const char* spec : {"optimizer o(lr = 1000) {\n  other: scale(lr)\n}\n", "optimizer o(lr = 10000) {\n  matrix: ns -> scale(lr)\n}\n"}) {
    CAPTURE(spec);
    std::vector<unsigned short> w(32), g(32);
    for (size_t i = 0; i < w.size(); ++i) {
      w[i] = half::opal_to_f16(i == 5 ? 65000.f : 1.f);
      g[i] = half::opal_to_f16(-1.f);
    }
    const auto before = w;
    auto opt = make_optimizer(compile_spec({spec, "", ""}), {{"w", {4, 8}, w.data(), g.data(), true, ParamRole::None, DType::F16, DType::F16}});
    opt->set_nonfinite_policy(NonFinitePolicy::Raise);
    const std::string err = error_of([&] { opt->step(); });
    CHECK(err.find("the new parameter value holds NaN or Inf; the step was undone") != std::string::npos);
    CHECK(err.find("when stored as f16 (largest finite 65504)") != std::string::npos);
    CHECK(w == before);
    CHECK(opt->step_count() == 0);
    opt->set_nonfinite_policy(NonFinitePolicy::Skip);
    opt->step();
    CHECK(w == before);
    CHECK(opt->skipped_steps() == 1);
    opt->set_nonfinite_policy(NonFinitePolicy::Zero);  // stepped again on a zero gradient: no move
    opt->step();
    CHECK(w == before);
    REQUIRE(opt->nonfinite_events().size() == 1);
    CHECK(opt->nonfinite_events()[0].action == "gradient zeroed");
    for (auto& x : g) x = half::opal_to_f16(-1.f);
    opt->set_nonfinite_policy(NonFinitePolicy::Off);  // unchecked, the overflow is stored
    opt->step();
    CHECK(std::isinf(half::opal_ld_f16(w[5])));
    CHECK(half::opal_ld_f16(w[0]) > 1.f);
  }
}

TEST_CASE("an f32 master copy: the 16-bit parameter is the f32 run's, rounded; checkpoints and undo keep the copy") {
  for (const char* spec : {"adamw", "muon"}) {
    CAPTURE(spec);
    std::vector<ParamDesc> low = kShapes, ref = kShapes;
    for (auto& p : low) {
      p.dtype = p.grad_dtype = DType::BF16;
      p.master = true;
    }
    auto compiled = compile_spec({spec, "", ""});
    auto a = make_optimizer(compiled, low);
    auto r = make_optimizer(compiled, ref);
    for (const auto& p : kShapes) {
      const auto w0 = rounded(randoms(numel(p.shape), 11, 0.5f), DType::BF16);
      a->write_param(p.name, w0);
      r->write_param(p.name, w0);
      CHECK(a->slots(p.name).back() == "master");
    }
    for (int s = 0; s < 6; ++s) {
      for (const auto& p : kShapes) {
        const auto gv = rounded(randoms(numel(p.shape), unsigned(50 + s), 0.01f), DType::BF16);
        a->write_grad(p.name, gv);
        r->write_grad(p.name, gv);
      }
      a->step();
      r->step();
    }
    for (const auto& p : kShapes) {
      CAPTURE(p.name);
      CHECK(same_bits(a->read_state(p.name, "master"), r->read_param(p.name)));  // the f32 run, exactly
      CHECK(same_bits(a->read_param(p.name), rounded(r->read_param(p.name), DType::BF16)));
    }
  }
  // saved and restored by name; a checkpoint without copies resumes with them taken from the parameters
  const std::string dir = testing::scratch("precision-master");
  std::vector<ParamDesc> ps = {{"w", {4, 8}, nullptr, nullptr, false, ParamRole::None, DType::BF16, DType::BF16, true}};
  auto a = make_optimizer(compile_spec({"adamw", "", ""}), ps);
  a->write_grad("w", randoms(32, 1, 0.1f));
  a->step();
  a->save(dir + "/m.safetensors", {.params = true});
  auto b = make_optimizer(compile_spec({"adamw", "", ""}), ps);
  b->load(dir + "/m.safetensors");
  CHECK(same_bits(b->read_state("w", "master"), a->read_state("w", "master")));
  ps[0].master = false;
  auto plain = make_optimizer(compile_spec({"adamw", "", ""}), ps);
  CHECK(plain->load(dir + "/m.safetensors").restored.size() == 2);  // the copy is left out
  plain->save(dir + "/plain.safetensors", {.params = true});
  auto c = make_optimizer(compile_spec({"adamw", "", ""}), {{"w", {4, 8}, nullptr, nullptr, false, ParamRole::None, DType::BF16, DType::BF16, true}});
  c->load(dir + "/plain.safetensors");
  CHECK(same_bits(c->read_state("w", "master"), a->read_param("w")));  // from the (rounded) parameter
  // a step undone by the non-finite policy leaves the copy as it was
  c->set_nonfinite_policy(NonFinitePolicy::Raise);
  const auto before = c->read_state("w", "master");
  std::vector<float> bad = randoms(32, 2, 0.1f);
  bad[3] = NAN;
  c->write_grad("w", bad);
  CHECK_FALSE(error_of([&] { c->step(); }).empty());
  CHECK(same_bits(c->read_state("w", "master"), before));
}

namespace {
// Adam's moments in components of their own, stored as `storage` ("" for f32).
std::string bf16_adam(const std::string& storage) {
  const std::string st = storage.empty() ? "" : ": " + storage;
  return "component mom16(beta = 0.9) {\n  state m" + st + " = zeros\n  m = beta * m + (1 - beta) * u\n  u = m / (1 - beta ^ t)\n}\n" +
         "component adapt16(beta = 0.999, eps = 1e-8) {\n  state v" + st +
         " = zeros\n  v = beta * v + (1 - beta) * g * g\n  u = u / (sqrt(v / (1 - beta ^ t)) + eps)\n}\n" +
         "optimizer o(lr = 1e-2) {\n  other: mom16 -> adapt16 -> scale(lr)\n}\n";
}
}  // namespace

TEST_CASE("a route's state(..., master) keeps an f32 master copy of each 16-bit parameter it steps") {
  const char* spec = "optimizer o(lr = 1e-2) {\n  \"h*\" state(bf16, master): adamw(lr = lr)\n  other state(f32, stochastic): adamw(lr = lr)\n}\n";
  CHECK(error_of([&] { compile_spec({spec, "", ""}); }).find("unknown option `stochastic` of `state(f32, ...)`") != std::string::npos);
  const char* good = "optimizer o(lr = 1e-2) {\n  \"h*\" state(bf16, master): adamw(lr = lr)\n  other: adamw(lr = lr)\n}\n";
  std::vector<ParamDesc> ps = {{"h.w", {4, 6}}, {"h.f", {6}}, {"b", {6}}};
  ps[0].dtype = ps[0].grad_dtype = ps[2].dtype = ps[2].grad_dtype = DType::BF16;  // h.f stays f32
  auto opt = make_optimizer(compile_spec({good, "", ""}), ps);
  CHECK(opt->slots("h.w").back() == "master");
  CHECK(opt->slots("h.f").back() != "master");  // an f32 parameter needs none
  CHECK(opt->slots("b").back() != "master");    // another route
  // updates below bf16's resolution accumulate in the copy, and reach the parameter
  opt->write_param("h.w", std::vector<float>(24, 1.f));
  for (int s = 0; s < 50; ++s) {
    opt->write_grad("h.w", std::vector<float>(24, 0.f));
    opt->write_grad("h.f", std::vector<float>(6, 0.f));
    opt->write_grad("b", std::vector<float>(6, 0.f));
    opt->step();
  }
  CHECK(opt->read_state("h.w", "master")[0] < 1.f - 45 * 1e-4f);  // lr * wd = 1e-4 a step
  CHECK(opt->read_param("h.w")[0] == 0.99609375f);                // 0.995 rounded: bf16's neighbour below 1
}

TEST_CASE("state stored as bf16 steps as the f32 program whose state is rounded after every step, bit for bit") {
  const std::vector<ParamDesc> ps = {{"w", {8, 16}}, {"b", {16}}};
  auto low = make_optimizer(compile_spec({bf16_adam("bf16"), "", ""}), ps);
  auto ref = make_optimizer(compile_spec({bf16_adam(""), "", ""}), ps);
  CHECK(low->state_dtype("w", "mom16.m") == DType::BF16);
  CHECK(ref->state_dtype("w", "mom16.m") == DType::F32);
  for (int s = 0; s < 5; ++s) {
    for (size_t i = 0; i < ps.size(); ++i) {
      const auto gv = randoms(numel(ps[i].shape), unsigned(7 * s + i), 0.1f);
      low->write_grad(ps[i].name, gv);
      ref->write_grad(ps[i].name, gv);
    }
    low->step();
    ref->step();
    for (const auto& p : ps)
      for (const char* slot : {"mom16.m", "adapt16.v"}) ref->write_state(p.name, slot, rounded(ref->read_state(p.name, slot), DType::BF16));
  }
  for (const auto& p : ps) {
    CAPTURE(p.name);
    CHECK(same_bits(low->read_param(p.name), ref->read_param(p.name)));
    for (const char* slot : {"mom16.m", "adapt16.v"}) CHECK(same_bits(low->read_state(p.name, slot), ref->read_state(p.name, slot)));
  }
  CHECK(error_of([&] { low->state("w", "mom16.m"); }).find("is stored as bf16") != std::string::npos);
  // `opal routes` counts state at its real storage: 2 bytes per element
  const std::string report = format_routes(describe_routes(*low, *compile_spec({bf16_adam("bf16"), "", ""})));
  CHECK(report.find("mom16.m [8, 16] bf16, adapt16.v [8, 16] bf16 (512 bytes)") != std::string::npos);
  CHECK(report.find("2 parameters, 576 bytes of optimizer state") != std::string::npos);
  // rounded stochastically: reproducible run to run, and not what rounding to nearest gives
  auto sr_run = [&] {
    auto o = make_optimizer(compile_spec({bf16_adam("bf16"), "", ""}), ps);
    o->set_stochastic_rounding(true, 9);
    for (int s = 0; s < 3; ++s) {
      for (const auto& p : ps) o->write_grad(p.name, randoms(numel(p.shape), unsigned(s), 0.1f));
      o->step();
    }
    return o->read_state("w", "adapt16.v");
  };
  const auto sr = sr_run();
  CHECK(same_bits(sr, sr_run()));
  CHECK_FALSE(same_bits(sr, low->read_state("w", "adapt16.v")));
}

TEST_CASE("a route's state(bf16) stores every slot matrix work does not read; through delegation too") {
  // Muon's momentum is read by Newton-Schulz only after its update (a temp): bf16. SOAP's
  // basis is a matrix operand: it stays f32, its Adam moments go bf16.
  const char* spec =
      "optimizer o(lr = 0.02) {\n"
      "  \"h*\" state(bf16): muon(lr = lr)\n"
      "  \"s*\" state(bf16): soap(lr = lr)\n"
      "  other: adamw(lr = lr)\n"
      "}\n";
  auto opt = make_optimizer(compile_spec({spec, "", ""}), {{"h.w", {16, 8}}, {"s.w", {16, 8}}, {"b", {8}}});
  for (const auto& slot : opt->slots("h.w")) {
    CAPTURE(slot);
    CHECK(opt->state_dtype("h.w", slot) == DType::BF16);
  }
  int f32 = 0, bf16 = 0;
  for (const auto& slot : opt->slots("s.w")) (opt->state_dtype("s.w", slot) == DType::BF16 ? bf16 : f32)++;
  CHECK(f32 >= 2);  // the two bases
  CHECK(bf16 >= 2);
  for (const auto& slot : opt->slots("b")) CHECK(opt->state_dtype("b", slot) == DType::F32);
  for (int s = 0; s < 3; ++s) {
    for (const char* n : {"h.w", "s.w", "b"}) opt->write_grad(n, randoms(n[0] == 'b' ? 8 : 128, unsigned(s), 0.1f));
    opt->step();
  }
  for (const char* n : {"h.w", "s.w", "b"})
    for (float x : opt->read_param(n)) CHECK(std::isfinite(x));
}

TEST_CASE("state(bf16, stochastic) rounds the route's state stochastically whatever the runtime says") {
  auto run = [](const char* modifier) {
    auto opt =
        make_optimizer(compile_spec({fmt::format("optimizer o(lr = 1e-2) {{\n  other {}: adamw(lr = lr)\n}}\n", modifier), "", ""}), {{"w", {64}}});
    for (int s = 0; s < 3; ++s) {
      opt->write_grad("w", randoms(64, unsigned(s), 0.1f));
      opt->step();
    }
    return opt->read_state("w", "adapt.v");
  };
  const auto nearest = run("state(bf16)"), sr = run("state(bf16, stochastic)");
  CHECK(same_bits(sr, run("state(bf16, stochastic)")));
  CHECK_FALSE(same_bits(sr, nearest));
  std::string msg;
  try {
    compile_spec({"optimizer o(lr = 1e-2) {\n  other state(bf16, stochastik): adamw(lr = lr)\n}\n", "", ""});
  } catch (const CompileError& e) {
    msg = e.what();
  }
  CHECK(msg.find("unknown option `stochastik`") != std::string::npos);
}

TEST_CASE("per-row and scalar state stored as bf16 also step as the rounded f32 program") {
  auto spec = [](const char* st) {
    return fmt::format(
        "component rms16(beta = 0.99) {{\n  state r{0} = zeros(rows)\n  state s{0} = scalar(0)\n"
        "  r = beta * r + (1 - beta) * row_sum(u * u)\n  s = beta * s + (1 - beta) * sum(u * u)\n"
        "  u = u / (sqrt(r) + sqrt(s) + 1e-8)\n}}\n"
        "optimizer o(lr = 1e-2) {{\n  matrix: rms16 -> scale(lr)\n}}\n",
        st);
  };
  const std::vector<ParamDesc> ps = {{"w", {6, 10}}};
  auto low = make_optimizer(compile_spec({spec(": bf16"), "", ""}), ps);
  auto ref = make_optimizer(compile_spec({spec(""), "", ""}), ps);
  for (int s = 0; s < 4; ++s) {
    const auto gv = randoms(60, unsigned(s + 30), 0.3f);
    low->write_grad("w", gv);
    ref->write_grad("w", gv);
    low->step();
    ref->step();
    for (const char* slot : {"rms16.r", "rms16.s"}) ref->write_state("w", slot, rounded(ref->read_state("w", slot), DType::BF16));
  }
  CHECK(same_bits(low->read_param("w"), ref->read_param("w")));
  for (const char* slot : {"rms16.r", "rms16.s"}) CHECK(same_bits(low->read_state("w", slot), ref->read_state("w", slot)));
}

TEST_CASE("a state's storage: unknown names are errors with a hint") {
  std::string msg;
  try {
    compile_spec({bf16_adam("bf61"), "", ""});
  } catch (const CompileError& e) {
    msg = e.what();
  }
  CHECK(msg.find("unknown storage `bf61` for state `m`") != std::string::npos);
  CHECK(msg.find("did you mean `bf16`?") != std::string::npos);
}

TEST_CASE("checkpoints keep each slot's storage; a bf16 run resumes as f32 and back, converted and reported") {
  const std::string dir = testing::scratch("precision-ckpt");
  const std::vector<ParamDesc> ps = {{"w", {4, 6}}};
  auto low = make_optimizer(compile_spec({bf16_adam("bf16"), "", ""}), ps);
  low->write_grad("w", randoms(24, 3, 0.2f));
  low->step();
  low->save(dir + "/low.safetensors");
  CHECK(read_safetensors(dir + "/low.safetensors").tensors.at("state/w/mom16.m").dtype == "BF16");
  auto f32 = make_optimizer(compile_spec({bf16_adam(""), "", ""}), ps);
  LoadReport r = f32->load(dir + "/low.safetensors");
  CHECK(r.converted.size() == 2);
  CHECK(r.summary().find("w/mom16.m (BF16 -> F32)") != std::string::npos);
  CHECK(same_bits(f32->read_state("w", "adapt16.v"), low->read_state("w", "adapt16.v")));
  // and back: f32 values rounded into bf16 storage
  f32->write_grad("w", randoms(24, 4, 0.2f));
  f32->step();
  f32->save(dir + "/f32.safetensors");
  auto back = make_optimizer(compile_spec({bf16_adam("bf16"), "", ""}), ps);
  CHECK(back->load(dir + "/f32.safetensors").converted.size() == 2);
  CHECK(same_bits(back->read_state("w", "mom16.m"), rounded(f32->read_state("w", "mom16.m"), DType::BF16)));
}
}  // TEST_SUITE

TEST_CASE("the optimizer's state argument stores every route that says none, as the route's state(...) would") {
  // `adamw` given "bf16, stochastic" steps as a spec whose route says it, bit for bit
  auto states = [](SpecRef ref) {
    auto opt = make_optimizer(compile_spec(ref), {{"w", {64}}});
    for (int s = 0; s < 3; ++s) {
      opt->write_grad("w", randoms(64, unsigned(s), 0.1f));
      opt->step();
    }
    CHECK(opt->state_dtype("w", "adapt.v") == DType::BF16);
    return opt->read_state("w", "adapt.v");
  };
  const auto given = states({"adamw", "", "", "bf16, stochastic"});
  CHECK(same_bits(given, states({"optimizer o(lr = 1e-3) {\n  other state(bf16, stochastic): adamw(lr = lr)\n}\n", "", "", ""})));
  // a route that says its own storage keeps it; q8 takes the parameter-shaped slots only
  const char* spec =
      "optimizer o(lr = 0.02) {\n  \"h*\" state(f32): muon(lr = lr)\n  other: momentum(0.9) -> adapt_factored_decay(0.8, 1e-30) -> scale(lr)\n}\n";
  auto opt = make_optimizer(compile_spec({spec, "", "", "q8(64)"}), {{"h.w", {16, 8}}, {"f.w", {16, 8}}});
  for (const auto& slot : opt->slots("h.w")) CHECK(opt->state_dtype("h.w", slot) == DType::F32);
  int q8 = 0, f32 = 0;
  for (const auto& slot : opt->slots("f.w")) (opt->state_dtype("f.w", slot) == DType::Q8 ? q8 : f32)++;
  CHECK(q8 >= 1);   // the momentum
  CHECK(f32 >= 3);  // the row and column statistics (not parameter-shaped) and the scales
  CHECK(opt->state_blocks("f.w", "momentum.m").first == 64);
  // `master` gives a 16-bit parameter its f32 copy
  std::vector<ParamDesc> ps = {{"w", {4, 6}}};
  ps[0].dtype = ps[0].grad_dtype = DType::BF16;
  CHECK(make_optimizer(compile_spec({"adamw", "", "", "f32, master"}), ps)->slots("w").back() == "master");
  // a bad argument is a compile error pointing into its own text, and compiles nothing
  CHECK(error_of([] { compile_spec({"adamw", "", "", "q8(100)"}); }).find("<state>:1:4: error: `q8` takes a block size") != std::string::npos);
  CHECK(error_of([] { compile_spec({"adamw", "", "", "bf16, sto"}); }).find("unknown option `sto`") != std::string::npos);
  CHECK(error_of([] { compile_spec({"adamw", "", "", "f16"}); }).find("unknown storage `f16`") != std::string::npos);
  CHECK(error_of([] { compile_spec({"adamw", "", "", "q8 x"}); }).find("expected `,` or the end") != std::string::npos);
  CHECK(error_of([] { compile_spec({"adamw", "", "", "("}); }).find("<state>:1:1") != std::string::npos);
  CHECK(error_of([] {
          compile_spec({"adamw", "", "", "bf16, master, master"});
        }).find("<state>:1:15: error: option `master` given twice") != std::string::npos);
  CHECK(error_of([] {
          compile_spec({"adamw", "", "", "bf16, stochastic, stochastic"});
        }).find("option `stochastic` given twice") != std::string::npos);
}
