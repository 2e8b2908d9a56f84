// The CPU target's staged bf16 stores (cpu_codegen.cpp, CEmitter::staged_loop): on a CPU with
// AVX512-BF16 the flat loops round their bf16 stores a vector at a time, to nearest or
// stochastically, and must store what opal_to_bf16 stores, bit for bit, for every float.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "driver/build.h"
#include "runtime/cpu/host_compile.h"
#include "runtime/nonfinite.h"
#include "runtime/optimizer.h"

#include "scoped_env.h"
#include "values.h"

using namespace opal;
using opal::testing::numel;
using opal::testing::randoms;
using opal::testing::same_bits;
using opal::testing::ScopedEnv;

namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

// Whether this CPU has the instructions the staged stores use (Linux's names).
bool cpu_stages_bf16() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("flags", 0) == 0)
      return (line + " ").find(" avx512_bf16 ") != std::string::npos && (line + " ").find(" avx512dq ") != std::string::npos;
  return false;
}

// Every float through opal_st_bf16x64 against opal_to_bf16, in order (runs of 32 alike: all
// subnormal or none) and in a scrambled order (subnormals among normal values): the number of
// stores that differ, or -1 where the prelude does not stage (OPAL_STAGE_BF16 undefined).
const char* kEveryFloat = R"(
extern "C" long long opal_test_every_float(void) {
#ifdef OPAL_STAGE_BF16
  static unsigned int bits[1 << 16];
  static unsigned short out[1 << 16];
  long long bad = 0;
  for (int pass = 0; pass < 2; ++pass)
    for (unsigned long long hi = 0; hi < (pass == 0 ? 65536ull : 4096ull); ++hi) {
      for (unsigned int i = 0; i < 65536u; ++i) {
        const unsigned int u = (unsigned int)(hi << 16 | i);
        bits[i] = pass == 0 ? u : u * 0x9e3779b1u;
      }
      for (unsigned int i = 0; i < 65536u; i += 64) opal_st_bf16x64(out + i, (const float*)bits + i);
      for (unsigned int i = 0; i < 65536u; ++i) bad += out[i] != opal_to_bf16(opal_u2f(bits[i]), 0, 0ull, 0.0, 0ll);
    }
  return bad;
#else
  return -1;
#endif
}

// The same through opal_st_bf16x64_sr against opal_to_bf16's stochastic rounding (staged on
// every CPU): every float, each run of 65536 under its own stream and step, its chunks starting
// at every offset from a multiple of four (an element's bits are a quarter of a hash: see
// support/half.h).
extern "C" long long opal_test_every_float_sr(unsigned long long stride) {
#ifdef OPAL_STAGE_SR
  static unsigned int bits[1 << 16];
  static unsigned short out[1 << 16];
  long long bad = 0;
  for (unsigned long long hi = 0; hi < 65536ull; hi += stride) {
    for (unsigned int i = 0; i < 65536u; ++i) bits[i] = (unsigned int)(hi << 16 | i);
    const unsigned long long id = hi * 0x9e3779b97f4a7c15ull;
    const double t = (double)(hi % 1000 + 1);
    const long long base = (long long)(hi << 16) + (long long)(hi % 4);
    const unsigned long long k = opal_sr_key(id, t);
    for (unsigned int i = 0; i < 65536u; i += 64) opal_st_bf16x64_sr(out + i, (const float*)bits + i, k, base + i);
    for (unsigned int i = 0; i < 65536u; ++i) bad += out[i] != opal_to_bf16(opal_u2f(bits[i]), 1, id, t, base + i);
  }
  return bad;
#else
  return -1;
#endif
}
)";

// m = u stored as bf16, then w -= lr * m: both stores round the values as given
const char* kCopySpec =
    "component copy(beta = 0) {\n  state m: bf16 = zeros\n  m = beta * m + (1 - beta) * u\n  u = m\n}\n"
    "optimizer o(lr = 1) {\n  other: copy -> scale(lr)\n}\n";

// Gradients with the values a conversion gets wrong first: NaNs, infinities, subnormals (of
// f32 and of bf16), ties to even both ways, overflow past bf16's largest value, signed zeros.
std::vector<float> hostile(size_t n, unsigned seed) {
  std::vector<float> v = randoms(n, seed, 0.5f);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> special = {nan, -nan, inf, -inf, 1e-39f, -3e-41f, 1.4e-45f, 1.00390625f, -1.01171875f, 3.4e38f, 0.0f, -0.0f, 1e-20f};
  for (size_t e = 0; e < n; e += 7) v[e] = special[(e / 7 + seed) % special.size()];
  return v;
}

}  // namespace

TEST_SUITE("precision") {
TEST_CASE("staged bf16 stores round every float as opal_to_bf16 does, where the CPU can stage them") {
  const std::string src = emit_optimizer(*compile_spec({"adamw", "", ""}), Target::Cpu, false, true) + kEveryFloat;
  // the loops stage w's stores, rounding to nearest and stochastically: (w bf16) x (g f32, bf16,
  // f16) x (small, parallel) each; the tails store value by value
  CHECK(count(src, "opal_st_bf16x64(sb0 + opal_c, opal_h0);") == 6);
  CHECK(count(src, "opal_st_bf16x64_sr(sb0 + opal_c, opal_h0, opal_k0, T.base + opal_c);") == 6);
  CHECK(count(src, "opal_to_bf16(v") > 0);
  const HostCompileResult r = compile_host(src);
  REQUIRE_MESSAGE(r.module, r.error);
  void* sym = r.module->symbol("opal_test_every_float");
  REQUIRE(sym != nullptr);
  CHECK(reinterpret_cast<long long (*)()>(sym)() == (cpu_stages_bf16() ? 0 : -1));
  sym = r.module->symbol("opal_test_every_float_sr");
  REQUIRE(sym != nullptr);
  CHECK(reinterpret_cast<long long (*)(unsigned long long)>(sym)(1) == 0);  // stochastic stores stage on every CPU
  // and compiled for a CPU without AVX-512 (vectorized otherwise): one float in 17 (runs of
  // 65536 apart, at every chunk offset still)
  ScopedEnv flags("OPAL_CXXFLAGS", "-mno-avx512f");
  const HostCompileResult avx2 = compile_host(src);
  REQUIRE_MESSAGE(avx2.module, avx2.error);
  sym = avx2.module->symbol("opal_test_every_float_sr");
  REQUIRE(sym != nullptr);
  CHECK(reinterpret_cast<long long (*)(unsigned long long)>(sym)(17) == 0);
}

TEST_CASE("staged and value-by-value bf16 stores give the same bits: parallel chunks, tails, NaN, subnormals, ties") {
  // tensors with parallel chunks and a tail (70037), chunks and a tail (129), one chunk (64),
  // and none (63); parameters, gradients and state stored as bf16
  const std::vector<std::vector<int64_t>> shapes = {{70037}, {3, 43}, {64}, {63}};
  std::vector<ParamDesc> ps;
  for (size_t i = 0; i < shapes.size(); ++i) {
    ParamDesc p{"p" + std::to_string(i), shapes[i]};
    p.dtype = p.grad_dtype = DType::BF16;
    ps.push_back(p);
  }
  // unchecked, and checked kernels (their flags reduced across the staged chunks too): under
  // `skip`, the step whose gradients hold NaNs is undone (skipped_steps). Rounding to nearest;
  // stochastically by the runtime (every store: loops staged on every CPU); the state
  // stochastically by the route (`bf16, stochastic`) and w to nearest (loops staged with the
  // conversion only). (Same programs where it can: each new one compiles twice.)
  struct Case {
    std::string spec, state;
    NonFinitePolicy policy;
    bool stochastic;
  };
  for (const Case& c : {Case{kCopySpec, "", NonFinitePolicy::Off, false}, Case{"adamw", "bf16", NonFinitePolicy::Off, false},
                        Case{"adamw", "bf16", NonFinitePolicy::Skip, false}, Case{"adamw", "bf16", NonFinitePolicy::Off, true},
                        Case{"adamw", "bf16", NonFinitePolicy::Skip, true}, Case{"adamw", "bf16, stochastic", NonFinitePolicy::Off, false},
                        Case{kCopySpec, "", NonFinitePolicy::Off, true}}) {
    const std::string& spec = c.spec;
    const NonFinitePolicy policy = c.policy;
    CAPTURE(spec);
    CAPTURE(c.state);
    CAPTURE(c.stochastic);
    CAPTURE(nonfinite_policy_name(policy));
    // the largest parameter in the caller's memory, off the vectors' alignment by one element
    std::vector<uint16_t> memory[2][2];
    auto run = [&](bool staged) {
      // the same program stored value by value (another cache entry)
      ScopedEnv flags("OPAL_CXXFLAGS", staged ? "" : "-DOPAL_NO_STAGING");
      std::vector<ParamDesc> descs = ps;
      for (int k = 0; k < 2; ++k) memory[staged][k].assign(numel(ps[0].shape) + 1, 0);
      descs[0].data = memory[staged][0].data() + 1;
      descs[0].grad = memory[staged][1].data() + 1;
      auto o = make_optimizer(compile_spec({spec, "", "", c.state}), descs);
      o->set_nonfinite_policy(policy);
      o->set_stochastic_rounding(c.stochastic, 7);
      for (size_t i = 0; i < ps.size(); ++i) o->write_param(ps[i].name, randoms(numel(ps[i].shape), unsigned(i), 1.0f));
      for (int s = 0; s < 3; ++s) {
        // under skip, the NaNs in one step of p0 and p1 only (parallel chunks, and a small tensor): the other steps run
        for (size_t i = 0; i < ps.size(); ++i)
          o->write_grad(ps[i].name, policy == NonFinitePolicy::Off || (s == 1 && i <= 1) ? hostile(numel(ps[i].shape), unsigned(10 * s + i))
                                                                                         : randoms(numel(ps[i].shape), unsigned(10 * s + i), 0.5f));
        o->step();
      }
      CHECK(o->skipped_steps() == (policy == NonFinitePolicy::Skip ? 1 : 0));
      return o;
    };
    auto a = run(true), b = run(false);
    // the caller's memory holds the steps, the same 16-bit words
    CHECK(std::count(memory[1][0].begin() + 1, memory[1][0].end(), uint16_t(0)) < 100);
    CHECK(memory[1][0] == memory[0][0]);
    for (const auto& p : ps) {
      CAPTURE(p.name);
      CHECK(same_bits(a->read_param(p.name), b->read_param(p.name)));
      for (const auto& slot : a->slots(p.name)) {
        CAPTURE(slot);
        CHECK(a->state_dtype(p.name, slot) == DType::BF16);
        CHECK(same_bits(a->read_state(p.name, slot), b->read_state(p.name, slot)));
      }
    }
  }
}
}
