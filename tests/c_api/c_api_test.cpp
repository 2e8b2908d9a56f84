// The C ABI, linked against libopal.so alone: lifecycle, every error path with its status and
// message (and no change), checkpoints, and no exception across the boundary.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unistd.h>
#include <filesystem>
#include <string>
#include <vector>

#include "opal.h"

extern "C" int opal_c_smoke(void);

namespace {
std::string err() { return opal_last_error(); }
// This process's scratch folder, removed when the tests end.
struct ScratchDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() / ("opal-c-api-" + std::to_string(getpid()));
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
} scratch;
std::string temp_path(const char* name) {
  std::filesystem::create_directories(scratch.path);
  return (scratch.path / name).string();
}
}  // namespace

TEST_CASE("a C translation unit drives the ABI") { CHECK(opal_c_smoke() == 0); }

TEST_CASE("versions and status names") {
  CHECK(opal_abi_version() == OPAL_ABI_VERSION);
  CHECK(std::string(opal_version()).size() > 0);
  CHECK(std::string(opal_status_name(OPAL_ERROR_CHECKPOINT)) == "OPAL_ERROR_CHECKPOINT");
}

TEST_CASE("a bad spec is OPAL_ERROR_SPEC with rendered diagnostics; no handle is made") {
  opal_optimizer* opt = nullptr;
  CHECK(opal_create("optimizer o(lr = 1) {\n  other: momentum(0.9) -> sclae(lr)\n}\n", nullptr, &opt) == OPAL_ERROR_SPEC);
  CHECK(opt == nullptr);
  CHECK(err().find("sclae") != std::string::npos);
  CHECK(err().find("^") != std::string::npos);  // a caret under the bad name
  CHECK(err().find("did you mean `scale`") != std::string::npos);
  CHECK(opal_create("adamww", nullptr, &opt) == OPAL_ERROR_SPEC);
  CHECK(err().find("adamw") != std::string::npos);
  CHECK(opal_create(nullptr, nullptr, &opt) == OPAL_ERROR_ARGUMENT);
  CHECK(err() == "spec must not be NULL");
}

TEST_CASE("opal_create_stored: the state's storage as an argument; a bad one is OPAL_ERROR_SPEC") {
  opal_optimizer* opt = nullptr;
  CHECK(opal_create_stored("adamw", nullptr, "q8(100)", &opt) == OPAL_ERROR_SPEC);
  CHECK(opt == nullptr);
  CHECK(err().find("<state>:1:4") != std::string::npos);
  CHECK(err().find("power of two") != std::string::npos);
  for (const char* state : std::vector<const char*>{"q8", "bf16", "", nullptr}) {
    CAPTURE(state ? state : "NULL");
    REQUIRE(opal_create_stored("adamw", nullptr, state, &opt) == OPAL_OK);
    std::vector<float> w(64, 1.f), g(64, 0.5f);
    int64_t shape[1] = {64};
    REQUIRE(opal_add_param(opt, "w", 1, shape, OPAL_F32, OPAL_CPU, w.data(), g.data()) == OPAL_OK);
    REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
    CHECK(w[0] < 1.f);
    float* v = nullptr;
    int64_t n = 0;
    const bool f32 = !state || !*state;
    // f32 state is a view; the 8- and 16-bit slots are refused, pointing at opal_read_state
    CHECK((opal_state(opt, "w", "adapt.v", &v, &n) == OPAL_OK) == f32);
    if (!f32) CHECK(err().find(std::string("stored as ") + state + ", not f32: read and write its values with opal_read_state") != std::string::npos);
    // every storage reads as f32 values: v = (1 - 0.999) * 0.5^2 after one step, in every element
    std::vector<float> vals(64, -1.f);
    REQUIRE(opal_read_state(opt, "w", "adapt.v", vals.data(), 64) == OPAL_OK);
    for (float x : vals) CHECK(x == doctest::Approx(2.5e-4).epsilon(4e-3));  // bf16 keeps 8 bits
    CHECK(std::all_of(vals.begin(), vals.end(), [&](float x) { return x == vals[0]; }));
    // and writes from f32 values: rounded to bf16, quantized to q8 (with new scales)
    std::vector<float> in(64);
    for (int i = 0; i < 64; ++i) in[size_t(i)] = 0.01f * float(i) - 0.3f;
    REQUIRE(opal_write_state(opt, "w", "momentum.m", in.data(), 64) == OPAL_OK);
    REQUIRE(opal_read_state(opt, "w", "momentum.m", vals.data(), 64) == OPAL_OK);
    for (int i = 0; i < 64; ++i) {
      CAPTURE(i);
      if (f32) CHECK(vals[size_t(i)] == in[size_t(i)]);
      CHECK(std::abs(vals[size_t(i)] - in[size_t(i)]) <= (state && state[0] == 'q' ? 0.3f * 0.02f : std::abs(in[size_t(i)]) / 256));
    }
    if (state && state[0] == 'q') {  // the block's scale is its absmax, negated for the signed code
      float scale = 0;
      REQUIRE(opal_read_state(opt, "w", "momentum.m.absmax", &scale, 1) == OPAL_OK);
      CHECK(scale == -in[63]);
    }
    // a count other than the slot's, a NULL buffer, an unknown slot: refused, nothing written
    CHECK(opal_read_state(opt, "w", "adapt.v", vals.data(), 63) == OPAL_ERROR_ARGUMENT);
    CHECK(err() == "state `adapt.v` of `w` has 64 values, and count is 63");
    CHECK(opal_write_state(opt, "w", "momentum.m", in.data(), 65) == OPAL_ERROR_ARGUMENT);
    CHECK(opal_write_state(opt, "w", "momentum.m", nullptr, 64) == OPAL_ERROR_ARGUMENT);
    CHECK(opal_read_state(opt, "w", "momentum.x", vals.data(), 64) == OPAL_ERROR_NOT_FOUND);
    std::vector<float> again(64);
    REQUIRE(opal_read_state(opt, "w", "momentum.m", again.data(), 64) == OPAL_OK);
    CHECK(again == vals);
    // the next step starts from the written momentum: w moves by about lr where m was set
    const float w_before = w[63];
    REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
    CHECK(w[63] < w_before);
    opal_destroy(opt);
  }
}

TEST_CASE("parameters: bad ones are refused with a reason, good ones train") {
  opal_optimizer* opt = nullptr;
  REQUIRE(opal_create("muon", nullptr, &opt) == OPAL_OK);
  std::vector<float> w(12, 0.5f), g(12), b(4, 0.f), gb(4);
  int64_t ws[2] = {4, 3}, bs[1] = {4}, bad[2] = {4, 0};
  CHECK(opal_add_param(opt, "w", 2, ws, OPAL_F64, OPAL_CPU, w.data(), g.data()) == OPAL_ERROR_UNSUPPORTED);
  CHECK(err().find("f64; Opal steps f32, bf16 and f16") != std::string::npos);
  CHECK(opal_add_param(opt, "w", 2, ws, OPAL_F32, OPAL_CUDA, w.data(), g.data()) == OPAL_ERROR_UNSUPPORTED);
  CHECK(opal_add_param(opt, "w", 2, bad, OPAL_F32, OPAL_CPU, w.data(), g.data()) == OPAL_ERROR_ARGUMENT);
  CHECK(err().find("every dimension must be positive") != std::string::npos);
  CHECK(opal_add_param(opt, "w", 9, ws, OPAL_F32, OPAL_CPU, w.data(), g.data()) == OPAL_ERROR_ARGUMENT);
  CHECK(opal_add_param(opt, "w", 2, ws, OPAL_F32, OPAL_CPU, w.data(), g.data()) == OPAL_OK);
  CHECK(opal_add_param(opt, "w", 2, ws, OPAL_F32, OPAL_CPU, w.data(), g.data()) == OPAL_ERROR_ARGUMENT);
  CHECK(err().find("given twice") != std::string::npos);
  CHECK(opal_add_param(opt, "b", 1, bs, OPAL_F32, OPAL_CPU, b.data(), gb.data()) == OPAL_OK);
  CHECK(opal_set_hparam(opt, "lrr", 1.0) == OPAL_ERROR_NOT_FOUND);
  CHECK(err().find("did you mean `lr`") != std::string::npos);
  CHECK(opal_set_hparam(opt, "lr", 0.01) == OPAL_OK);  // before the parameter list is fixed
  for (int s = 0; s < 3; ++s) {
    for (size_t i = 0; i < g.size(); ++i) g[i] = std::sin(float(i + s));
    for (size_t i = 0; i < gb.size(); ++i) gb[i] = 1.f;
    REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
  }
  double lr = 0;
  CHECK(opal_get_hparam(opt, "lr", &lr) == OPAL_OK);
  CHECK(lr == 0.01);
  CHECK(w[0] != 0.5f);
  CHECK(b[0] < 0.f);
  const char* route = nullptr;
  CHECK(opal_route(opt, "w", &route) == OPAL_OK);
  CHECK(std::string(route) == "matrix");
  CHECK(opal_add_param(opt, "late", 1, bs, OPAL_F32, OPAL_CPU, b.data(), gb.data()) == OPAL_ERROR_STATE);
  CHECK(opal_step(opt, reinterpret_cast<void*>(0x1)) == OPAL_ERROR_UNSUPPORTED);
  // state slots
  size_t n = 0;
  CHECK(opal_num_slots(opt, "w", &n) == OPAL_OK);
  REQUIRE(n == 1);
  const char* slot = nullptr;
  CHECK(opal_slot_name(opt, "w", 0, &slot) == OPAL_OK);
  CHECK(std::string(slot) == "momentum.m");
  CHECK(opal_slot_name(opt, "w", 1, &slot) == OPAL_ERROR_NOT_FOUND);
  float* m = nullptr;
  int64_t numel = 0;
  CHECK(opal_state(opt, "w", "momentum.m", &m, &numel) == OPAL_OK);
  CHECK(numel == 12);
  CHECK(m[0] != 0.f);
  int ndim = 0;
  int64_t shape[8];
  CHECK(opal_state_shape(opt, "w", "momentum.m", &ndim, shape) == OPAL_OK);
  CHECK(ndim == 2);
  CHECK(shape[1] == 3);
  CHECK(opal_state(opt, "v", "momentum.m", &m, &numel) == OPAL_ERROR_NOT_FOUND);
  CHECK(err().find("no parameter `v`") != std::string::npos);
  CHECK(opal_state(opt, "w", "momentum.v", &m, &numel) == OPAL_ERROR_NOT_FOUND);
  CHECK(opal_num_slots(nullptr, "w", &n) == OPAL_ERROR_ARGUMENT);
  opal_destroy(opt);
  opal_destroy(nullptr);  // a no-op, like free
}

namespace {
// bf16 bits of x, rounded to nearest even (the test's own, not Opal's)
uint16_t bf16(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  return uint16_t((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}
float from_bf16(uint16_t h) {
  uint32_t b = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}
}  // namespace

TEST_CASE("bf16 parameters step in place, with bf16 or f32 gradients; rounding is nearest or stochastic") {
  opal_optimizer* opt = nullptr;
  REQUIRE(opal_create("sgd", nullptr, &opt) == OPAL_OK);
  std::vector<uint16_t> w(1000, bf16(1.0f)), g(1000, bf16(0.5f));
  std::vector<float> g32(1000, -0.001f);
  int64_t shape[1] = {1000};
  REQUIRE(opal_add_param(opt, "w", 1, shape, OPAL_BF16, OPAL_CPU, w.data(), g.data()) == OPAL_OK);
  REQUIRE(opal_set_hparam(opt, "b1", 0.0) == OPAL_OK);
  REQUIRE(opal_set_hparam(opt, "lr", 0.5) == OPAL_OK);
  CHECK(opal_set_rounding(opt, "stochastik", 1) == OPAL_ERROR_ARGUMENT);
  CHECK(err().find("use \"nearest\" or \"stochastic\"") != std::string::npos);
  REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
  CHECK(from_bf16(w[7]) == 0.75f);
  float* data = nullptr;
  CHECK(opal_param_data(opt, "w", &data, nullptr, nullptr) == OPAL_ERROR_ARGUMENT);  // not f32 memory
  CHECK(err().find("is bf16, not f32") != std::string::npos);
  CHECK(opal_bind_grad(opt, "w", g32.data(), OPAL_F64) == OPAL_ERROR_UNSUPPORTED);
  // an f32 gradient of 0.001: 0.0005 is below bf16's resolution at 0.75 (2^-8)
  REQUIRE(opal_bind_grad(opt, "w", g32.data(), OPAL_F32) == OPAL_OK);
  REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
  CHECK(from_bf16(w[7]) == 0.75f);  // rounded to nearest: the update vanished
  REQUIRE(opal_set_rounding(opt, "stochastic", 42) == OPAL_OK);
  int moved = 0;
  REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
  for (uint16_t x : w) moved += from_bf16(x) != 0.75f;
  CHECK(moved > 50);  // about 1000 * 0.0005 / 2^-8 = 128 rounded up
  CHECK(moved < 250);
  CHECK(opal_set_master_weights(opt, 1) == OPAL_ERROR_STATE);  // the list is fixed
  opal_destroy(opt);
}

TEST_CASE("master weights: updates below bf16's resolution accumulate in the f32 copy") {
  opal_optimizer* opt = nullptr;
  REQUIRE(opal_create("sgd", nullptr, &opt) == OPAL_OK);
  std::vector<uint16_t> w(8, bf16(1.0f)), g(8, bf16(-0.001f));
  int64_t shape[1] = {8};
  REQUIRE(opal_add_param(opt, "w", 1, shape, OPAL_BF16, OPAL_CPU, w.data(), g.data()) == OPAL_OK);
  REQUIRE(opal_set_master_weights(opt, 1) == OPAL_OK);
  REQUIRE(opal_set_hparam(opt, "b1", 0.0) == OPAL_OK);
  REQUIRE(opal_set_hparam(opt, "lr", 1.0) == OPAL_OK);
  for (int s = 0; s < 8; ++s) REQUIRE(opal_step(opt, nullptr) == OPAL_OK);  // +0.001 each, below half of 2^-7
  CHECK(from_bf16(w[0]) == 1.0078125f);                                     // 1.008 in the copy, rounded to the nearest bf16
  size_t n = 0;
  CHECK(opal_num_slots(opt, "w", &n) == OPAL_OK);
  CHECK(n == 2);  // sgd's momentum, and the copy
  // weights the caller writes into the parameter's memory need the copy written too: the step
  // stores the copy, so the parameter then goes on from the new weights
  std::fill(w.begin(), w.end(), bf16(2.0f));
  const std::vector<float> copy(8, 2.0f);
  REQUIRE(opal_write_state(opt, "w", "master", copy.data(), 8) == OPAL_OK);
  REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
  CHECK(from_bf16(w[0]) == 2.0f);
  std::vector<float> now(8);
  REQUIRE(opal_read_state(opt, "w", "master", now.data(), 8) == OPAL_OK);
  CHECK(now[0] == doctest::Approx(2.0 + 0.001).epsilon(1e-4));
  opal_destroy(opt);
}

TEST_CASE("roles: opal_set_param_role sends muon's embedding to AdamW; bad roles and late calls change nothing") {
  opal_optimizer* opt = nullptr;
  REQUIRE(opal_create("muon", nullptr, &opt) == OPAL_OK);
  int64_t es[2] = {10, 4}, hs[2] = {4, 4};
  CHECK(opal_add_param(opt, "wte", 2, es, OPAL_F32, OPAL_CPU, nullptr, nullptr) == OPAL_OK);
  CHECK(opal_add_param(opt, "h", 2, hs, OPAL_F32, OPAL_CPU, nullptr, nullptr) == OPAL_OK);
  CHECK(opal_set_param_role(opt, "wte", "embeding") == OPAL_ERROR_ARGUMENT);
  CHECK(err().find("did you mean `embedding`?") != std::string::npos);
  CHECK(opal_set_param_role(opt, "wpe", "embedding") == OPAL_ERROR_NOT_FOUND);
  CHECK(opal_set_param_role(opt, "wte", nullptr) == OPAL_ERROR_ARGUMENT);
  CHECK(opal_set_param_role(opt, "h", "head") == OPAL_OK);
  CHECK(opal_set_param_role(opt, "h", "") == OPAL_OK);  // back to none
  CHECK(opal_set_param_role(opt, "wte", "embedding") == OPAL_OK);
  const char* route = nullptr;
  CHECK(opal_route(opt, "wte", &route) == OPAL_OK);  // fixes the parameter list
  CHECK(std::string(route) == "embedding,head,other>other");
  CHECK(opal_route(opt, "h", &route) == OPAL_OK);
  CHECK(std::string(route) == "matrix");
  CHECK(opal_set_param_role(opt, "h", "head") == OPAL_ERROR_STATE);
  CHECK(opal_route(opt, "h", &route) == OPAL_OK);
  CHECK(std::string(route) == "matrix");
  opal_destroy(opt);
}

TEST_CASE("a hyperparameter that decides routes: set before the list is fixed it routes; after, it may not move a parameter") {
  opal_optimizer* opt = nullptr;
  REQUIRE(opal_create("soap", nullptr, &opt) == OPAL_OK);
  int64_t head[2] = {50257, 8};  // a vocabulary projection given no role: no 50257^2 factor past max_precond_dim
  CHECK(opal_add_param(opt, "lm_head", 2, head, OPAL_F32, OPAL_CPU, nullptr, nullptr) == OPAL_OK);
  CHECK(opal_set_hparam(opt, "max_precond_dim", 100000) == OPAL_ERROR_ARGUMENT);  // 50257^2: over the size limit, refused now
  CHECK(err().find("LimitExceeded") != std::string::npos);
  double cap = 0;
  CHECK(opal_get_hparam(opt, "max_precond_dim", &cap) == OPAL_OK);
  CHECK(cap == 10000);
  CHECK(opal_set_hparam(opt, "max_precond_dim", 4096) == OPAL_OK);
  const char* route = nullptr;
  CHECK(opal_route(opt, "lm_head", &route) == OPAL_OK);
  CHECK(std::string(route) == "where(rank >= 2 && cols <= max_precond_dim)");
  int ndim = 0;
  int64_t shape[8];
  CHECK(opal_state_shape(opt, "lm_head", "soap_basis_right.R", &ndim, shape) == OPAL_OK);
  CHECK((ndim == 2 && shape[0] == 8 && shape[1] == 8));
  CHECK(opal_set_hparam(opt, "max_precond_dim", 4) == OPAL_ERROR_ARGUMENT);  // would move lm_head
  CHECK(err().find("decides routes") != std::string::npos);
  CHECK(opal_get_hparam(opt, "max_precond_dim", &cap) == OPAL_OK);
  CHECK(cap == 4096);
  CHECK(opal_set_hparam(opt, "max_precond_dim", 5000) == OPAL_OK);  // moves nothing
  opal_destroy(opt);
}

TEST_CASE("owned buffers, rebinding, and a parameter without a gradient sits out") {
  opal_optimizer* opt = nullptr;
  REQUIRE(opal_create("signum", nullptr, &opt) == OPAL_OK);
  int64_t s[1] = {3};
  REQUIRE(opal_add_param(opt, "a", 1, s, OPAL_F32, OPAL_CPU, nullptr, nullptr) == OPAL_OK);
  REQUIRE(opal_add_param(opt, "b", 1, s, OPAL_F32, OPAL_CPU, nullptr, nullptr) == OPAL_OK);
  REQUIRE(opal_set_hparam(opt, "lr", 1.0) == OPAL_OK);
  float *wa, *ga, *wb, *gb;
  int64_t n;
  REQUIRE(opal_param_data(opt, "a", &wa, &ga, &n) == OPAL_OK);
  REQUIRE(opal_param_data(opt, "b", &wb, &gb, &n) == OPAL_OK);
  CHECK(n == 3);
  for (int i = 0; i < 3; ++i) ga[i] = gb[i] = 1.f;
  REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
  CHECK(wa[0] == -1.f);
  CHECK(wb[0] == -1.f);
  std::vector<float> mine = {5, 5, 5};
  REQUIRE(opal_bind_param(opt, "b", mine.data(), nullptr) == OPAL_OK);  // no gradient: skipped
  REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
  CHECK(wa[0] == -2.f);
  CHECK(mine[0] == 5.f);
  CHECK(opal_bind_param(opt, "b", nullptr, nullptr) == OPAL_ERROR_ARGUMENT);
  opal_destroy(opt);
}

TEST_CASE("checkpoints through the ABI: save, load with a report, refuse a corrupt file unchanged") {
  auto make = [](opal_optimizer** opt, std::vector<float>& w, std::vector<float>& g) {
    REQUIRE(opal_create("adamw", nullptr, opt) == OPAL_OK);
    int64_t s[2] = {3, 4};
    REQUIRE(opal_add_param(*opt, "layer.weight", 2, s, OPAL_F32, OPAL_CPU, w.data(), g.data()) == OPAL_OK);
  };
  std::vector<float> w1(12, 1.f), g1(12), w2(12, 1.f), g2(12);
  opal_optimizer *a, *b;
  make(&a, w1, g1);
  make(&b, w2, g2);
  for (int s = 1; s <= 4; ++s) {
    for (int i = 0; i < 12; ++i) g1[i] = std::cos(float(i * s));
    REQUIRE(opal_step(a, nullptr) == OPAL_OK);
  }
  std::string path = temp_path("abi.safetensors");
  CHECK(opal_save(a, path.c_str(), 7u) == OPAL_ERROR_ARGUMENT);
  REQUIRE(opal_save(a, path.c_str(), OPAL_SAVE_PARAMS) == OPAL_OK);
  const char* report = nullptr;
  REQUIRE(opal_load(b, path.c_str(), &report) == OPAL_OK);
  CHECK(std::string(report).find("restored 1 state slot") == std::string::npos);  // adamw has two
  CHECK(std::string(report).find("restored 2 state slots at step 4 and the parameters") != std::string::npos);
  CHECK(w2 == w1);
  int64_t t = 0;
  CHECK(opal_step_count(b, &t) == OPAL_OK);
  CHECK(t == 4);
  // a corrupt copy: refused, b unchanged
  std::string bad = temp_path("abi-bad.safetensors");
  {
    FILE* in = std::fopen(path.c_str(), "rb");
    std::vector<char> bytes(1 << 16);
    size_t n = std::fread(bytes.data(), 1, bytes.size(), in);
    std::fclose(in);
    bytes[n - 3] ^= 0x10;
    FILE* out = std::fopen(bad.c_str(), "wb");
    std::fwrite(bytes.data(), 1, n, out);
    std::fclose(out);
  }
  float* v = nullptr;
  int64_t numel = 0;
  REQUIRE(opal_state(b, "layer.weight", "adapt.v", &v, &numel) == OPAL_OK);
  std::vector<float> before(v, v + numel);
  CHECK(opal_load(b, bad.c_str(), &report) == OPAL_ERROR_CHECKPOINT);
  CHECK(err().find("checksum") != std::string::npos);
  CHECK(std::vector<float>(v, v + numel) == before);
  CHECK(opal_load(b, temp_path("missing.safetensors").c_str(), nullptr) == OPAL_ERROR_IO);
  opal_destroy(a);
  opal_destroy(b);
}

TEST_CASE("non-finite policy through the ABI: raise is OPAL_ERROR_NONFINITE and changes nothing; skip counts") {
  opal_optimizer* opt = nullptr;
  REQUIRE(opal_create("signum", nullptr, &opt) == OPAL_OK);
  int64_t s[1] = {3};
  REQUIRE(opal_add_param(opt, "a", 1, s, OPAL_F32, OPAL_CPU, nullptr, nullptr) == OPAL_OK);
  CHECK(opal_set_nonfinite(opt, "sometimes") == OPAL_ERROR_ARGUMENT);
  CHECK(err().find("unknown non-finite policy `sometimes`") != std::string::npos);
  REQUIRE(opal_set_nonfinite(opt, "raise") == OPAL_OK);  // before the optimizer is built
  float *w, *g;
  int64_t n;
  REQUIRE(opal_param_data(opt, "a", &w, &g, &n) == OPAL_OK);
  g[0] = 1.f, g[1] = NAN, g[2] = 1.f;
  CHECK(opal_step(opt, nullptr) == OPAL_ERROR_NONFINITE);
  CHECK(err().find("parameter `a`") != std::string::npos);
  CHECK(err().find("the gradient holds NaN or Inf") != std::string::npos);
  CHECK(std::string(opal_status_name(OPAL_ERROR_NONFINITE)) == "OPAL_ERROR_NONFINITE");
  int64_t t = -1;
  REQUIRE(opal_step_count(opt, &t) == OPAL_OK);
  CHECK(t == 0);
  CHECK(w[0] == 0.f);
  REQUIRE(opal_set_nonfinite(opt, "skip") == OPAL_OK);
  CHECK(opal_step(opt, nullptr) == OPAL_OK);
  int64_t skipped = 0;
  REQUIRE(opal_skipped_steps(opt, &skipped) == OPAL_OK);
  CHECK(skipped == 1);
  CHECK(w[0] == 0.f);
  // undo: nothing to undo after a skipped step; a step that stayed goes back, once
  CHECK(opal_undo_step(opt) == OPAL_ERROR_ARGUMENT);
  CHECK(err().find("[NoUndo]") != std::string::npos);
  g[1] = 1.f;
  REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
  CHECK(w[0] != 0.f);
  CHECK(opal_undo_step(opt) == OPAL_OK);
  CHECK(w[0] == 0.f);
  REQUIRE(opal_step_count(opt, &t) == OPAL_OK);
  CHECK(t == 0);
  REQUIRE(opal_skipped_steps(opt, &skipped) == OPAL_OK);
  CHECK(skipped == 2);
  CHECK(opal_undo_step(opt) == OPAL_ERROR_ARGUMENT);
  CHECK(opal_undo_step(nullptr) == OPAL_ERROR_ARGUMENT);
  opal_destroy(opt);
}

TEST_CASE("hardening: non-finite and out-of-range hyperparameters, one tensor twice, per-parameter step counts (issue 14)") {
  opal_optimizer* opt = nullptr;
  REQUIRE(opal_create("adamw", nullptr, &opt) == OPAL_OK);
  double lr = 0;
  REQUIRE(opal_get_hparam(opt, "lr", &lr) == OPAL_OK);
  // before the optimizer is built (the value is kept pending) and after
  for (int built = 0; built < 2; ++built) {
    for (double bad : {double(NAN), double(INFINITY), 1e308, -1e-3}) {  // the last: outside the range the spec gives lr
      CHECK(opal_set_hparam(opt, "lr", bad) == OPAL_ERROR_ARGUMENT);
      CHECK(err().find("hyperparameter `lr`") != std::string::npos);
      if (bad < 0) CHECK(err().find("takes values in [0, inf)") != std::string::npos);
      double now = 0;
      CHECK(opal_get_hparam(opt, "lr", &now) == OPAL_OK);
      CHECK(now == lr);
    }
    if (!built) {
      std::vector<float> w(6, 1.f), g(6, 0.5f), g2(6, 0.5f), b(3, 0.f), gb(3, 0.5f);
      int64_t ws[2] = {2, 3}, bs[1] = {3};
      REQUIRE(opal_add_param(opt, "w", 2, ws, OPAL_F32, OPAL_CPU, w.data(), g.data()) == OPAL_OK);
      REQUIRE(opal_add_param(opt, "w_again", 2, ws, OPAL_F32, OPAL_CPU, w.data(), g2.data()) == OPAL_OK);
      std::vector<float> before = w;
      CHECK(opal_step(opt, nullptr) == OPAL_ERROR_ARGUMENT);
      CHECK(err().find("`w` and `w_again` share memory") != std::string::npos);
      CHECK(w == before);
      opal_destroy(opt);
      REQUIRE(opal_create("adamw", nullptr, &opt) == OPAL_OK);
      static std::vector<float> w2(6, 1.f), g3(6, 0.5f), b2(3, 0.f), gb2(3, 0.5f);
      REQUIRE(opal_add_param(opt, "w", 2, ws, OPAL_F32, OPAL_CPU, w2.data(), g3.data()) == OPAL_OK);
      REQUIRE(opal_add_param(opt, "b", 1, bs, OPAL_F32, OPAL_CPU, b2.data(), nullptr) == OPAL_OK);
      REQUIRE(opal_bind_param(opt, "b", b2.data(), nullptr) == OPAL_OK);
      REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
      REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
      REQUIRE(opal_bind_param(opt, "b", b2.data(), gb2.data()) == OPAL_OK);
      REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
      int64_t tw = 0, tb = 0;
      CHECK(opal_param_step_count(opt, "w", &tw) == OPAL_OK);
      CHECK(opal_param_step_count(opt, "b", &tb) == OPAL_OK);
      CHECK(tw == 3);
      CHECK(tb == 1);
      CHECK(opal_param_step_count(opt, "nope", &tb) == OPAL_ERROR_NOT_FOUND);
    }
  }
  opal_destroy(opt);
}

TEST_CASE("parameters sharded by rows through the ABI: two processes' phases and exchanges equal one whole Muon step") {
  // one process steps the whole 6 x 4 matrix; two hold rows [0, 3) and [3, 6), the first owns it
  const int64_t whole[2] = {6, 4}, half[2] = {3, 4};
  std::vector<float> w(24), g(24);
  for (int i = 0; i < 24; ++i) w[size_t(i)] = 0.1f * float(i % 7) - 0.3f, g[size_t(i)] = std::sin(float(i));
  std::vector<float> w_ref = w, g_ref = g;
  opal_optimizer* ref = nullptr;
  REQUIRE(opal_create("muon", nullptr, &ref) == OPAL_OK);
  REQUIRE(opal_add_param(ref, "h.weight", 2, whole, OPAL_F32, OPAL_CPU, w_ref.data(), g_ref.data()) == OPAL_OK);
  opal_optimizer* rank[2] = {nullptr, nullptr};
  std::vector<float> wr[2] = {std::vector<float>(w.begin(), w.begin() + 12), std::vector<float>(w.begin() + 12, w.end())};
  std::vector<float> gr[2] = {std::vector<float>(g.begin(), g.begin() + 12), std::vector<float>(g.begin() + 12, g.end())};
  for (int r = 0; r < 2; ++r) {
    REQUIRE(opal_create("muon", nullptr, &rank[r]) == OPAL_OK);
    REQUIRE(opal_add_param(rank[r], "h.weight", 2, half, OPAL_F32, OPAL_CPU, wr[r].data(), gr[r].data()) == OPAL_OK);
    REQUIRE(opal_set_param_shard(rank[r], "h.weight", whole, 3 * r, r == 0) == OPAL_OK);
  }
  // hostile: a bad shard, a parameter not added, a phase out of order, step on a sharded optimizer
  const int64_t wrong[2] = {6, 5};
  CHECK(opal_set_param_shard(rank[1], "h.weight", wrong, 3, 0) == OPAL_ERROR_ARGUMENT);
  CHECK(err().find("only dim 0 may differ") != std::string::npos);
  CHECK(opal_set_param_shard(rank[1], "h.weight", whole, 4, 0) == OPAL_ERROR_ARGUMENT);
  CHECK(opal_set_param_shard(rank[1], "nope", whole, 3, 0) == OPAL_ERROR_NOT_FOUND);
  CHECK(opal_step_phase(rank[1], OPAL_PHASE_WHOLE, nullptr) == OPAL_ERROR_ARGUMENT);
  CHECK(err().find("[PhaseOrder]") != std::string::npos);
  CHECK(opal_step(rank[1], nullptr) == OPAL_ERROR_ARGUMENT);
  CHECK(err().find("[Sharded]") != std::string::npos);
  CHECK(opal_step_phase(rank[1], 7, nullptr) == OPAL_ERROR_ARGUMENT);
  CHECK(err().find("unknown phase 7") != std::string::npos);
  size_t none = 0;
  CHECK(opal_num_exchanges(rank[1], "h.weight", OPAL_PHASE_FINISH, &none) == OPAL_ERROR_ARGUMENT);
  CHECK(opal_num_exchanges(rank[1], "h.weight", -1, &none) == OPAL_ERROR_ARGUMENT);
  CHECK(opal_set_param_shard(rank[1], "h.weight", whole, 3, 0) == OPAL_ERROR_STATE);  // the list is fixed
  auto move = [&](opal_phase after) {
    size_t n0 = 0, n1 = 0;
    REQUIRE(opal_num_exchanges(rank[0], "h.weight", after, &n0) == OPAL_OK);
    REQUIRE(opal_num_exchanges(rank[1], "h.weight", after, &n1) == OPAL_OK);
    REQUIRE(n0 == n1);
    for (size_t k = 0; k < n0; ++k) {
      opal_exchange owner{}, mine[2]{};
      REQUIRE(opal_get_exchange(rank[0], "h.weight", after, k, &owner) == OPAL_OK);
      REQUIRE(owner.whole != nullptr);
      for (int r = 0; r < 2; ++r) {
        REQUIRE(opal_get_exchange(rank[r], "h.weight", after, k, &mine[r]) == OPAL_OK);
        REQUIRE(mine[r].split == 1);
        char* at = static_cast<char*>(owner.whole) + size_t(3 * r) * mine[r].unit_bytes;
        if (after == OPAL_PHASE_LOCAL) std::memcpy(at, mine[r].local, mine[r].local_bytes);
        else std::memcpy(mine[r].local, at, mine[r].local_bytes);
      }
      CHECK(mine[1].whole == nullptr);  // not the owner
    }
    opal_exchange x{};
    CHECK(opal_get_exchange(rank[0], "h.weight", after, n0, &x) == OPAL_ERROR_ARGUMENT);
  };
  for (int step = 0; step < 3; ++step) {
    REQUIRE(opal_step(ref, nullptr) == OPAL_OK);
    for (auto* o : rank) REQUIRE(opal_step_phase(o, OPAL_PHASE_LOCAL, nullptr) == OPAL_OK);
    move(OPAL_PHASE_LOCAL);
    for (auto* o : rank) REQUIRE(opal_step_phase(o, OPAL_PHASE_WHOLE, nullptr) == OPAL_OK);
    move(OPAL_PHASE_WHOLE);
    for (auto* o : rank) REQUIRE(opal_step_phase(o, OPAL_PHASE_FINISH, nullptr) == OPAL_OK);
  }
  CHECK(std::memcmp(wr[0].data(), w_ref.data(), 48) == 0);
  CHECK(std::memcmp(wr[1].data(), w_ref.data() + 12, 48) == 0);
  CHECK(wr[0][0] != w[0]);  // it moved
  size_t slots = 9;
  CHECK(opal_num_slots(rank[1], "h.weight", &slots) == OPAL_OK);
  CHECK(slots == 0);  // the owner keeps the momentum
  CHECK(opal_num_slots(rank[0], "h.weight", &slots) == OPAL_OK);
  CHECK(slots == 1);
  opal_destroy(ref);
  for (auto* o : rank) opal_destroy(o);
}

TEST_CASE("update statistics through the ABI: per parameter JSON lines, singular values for matrices only; off clears them") {
  opal_optimizer* opt = nullptr;
  REQUIRE(opal_create("adamw", nullptr, &opt) == OPAL_OK);
  int64_t ms[2] = {3, 4}, vs[1] = {5};
  REQUIRE(opal_add_param(opt, "w", 2, ms, OPAL_F32, OPAL_CPU, nullptr, nullptr) == OPAL_OK);
  REQUIRE(opal_add_param(opt, "b", 1, vs, OPAL_F32, OPAL_CPU, nullptr, nullptr) == OPAL_OK);
  const char* json = nullptr;
  REQUIRE(opal_update_stats(opt, &json) == OPAL_OK);  // before any step: nothing
  CHECK(std::string(json).empty());
  REQUIRE(opal_set_diagnostics(opt, 1) == OPAL_OK);  // before the optimizer is built
  float *w, *gw, *b, *gb;
  int64_t nw, nb;
  REQUIRE(opal_param_data(opt, "w", &w, &gw, &nw) == OPAL_OK);
  REQUIRE(opal_param_data(opt, "b", &b, &gb, &nb) == OPAL_OK);
  for (int64_t i = 0; i < nw; ++i) w[i] = 0.1f * float(i), gw[i] = std::sin(float(i) + 1.f);
  for (int64_t i = 0; i < nb; ++i) b[i] = 1.f, gb[i] = float(i) - 2.f;
  const std::vector<float> before(w, w + nw);
  REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
  double sq = 0;
  for (int64_t i = 0; i < nw; ++i) sq += double(before[size_t(i)] - w[i]) * double(before[size_t(i)] - w[i]);
  REQUIRE(opal_update_stats(opt, &json) == OPAL_OK);
  const std::string text = json;
  INFO(text);
  const size_t wline = text.find("{\"param\":\"w\""), bline = text.find("{\"param\":\"b\"");
  REQUIRE(wline != std::string::npos);
  REQUIRE(bline != std::string::npos);
  const std::string wl = text.substr(wline, text.find('\n', wline) - wline), bl = text.substr(bline, text.find('\n', bline) - bline);
  const size_t at = wl.find("\"update_rms\":");
  REQUIRE(at != std::string::npos);
  CHECK(std::strtod(wl.c_str() + at + 13, nullptr) == doctest::Approx(std::sqrt(sq / double(nw))).epsilon(1e-6));
  CHECK(wl.find("\"sv_ratio\":") != std::string::npos);  // a matrix
  CHECK(bl.find("\"sv_ratio\":") == std::string::npos);  // a vector
  CHECK(wl.find("\"step\":1") != std::string::npos);
  // off: the next step records nothing, and the last step's are gone
  REQUIRE(opal_set_diagnostics(opt, 0) == OPAL_OK);
  REQUIRE(opal_step(opt, nullptr) == OPAL_OK);
  REQUIRE(opal_update_stats(opt, &json) == OPAL_OK);
  CHECK(std::string(json).empty());
  CHECK(opal_update_stats(opt, nullptr) == OPAL_ERROR_ARGUMENT);
  CHECK(opal_update_stats(nullptr, &json) == OPAL_ERROR_ARGUMENT);
  CHECK(opal_set_diagnostics(nullptr, 1) == OPAL_ERROR_ARGUMENT);
  opal_destroy(opt);
}
