// CPU target: plain C++ loops over each tensor, OpenMP-parallel and vectorizable.
#include <algorithm>

#include <fmt/format.h>

#include "compiler/codegen/targets.h"
#include "compiler/exec/kernel_abi.h"

namespace opal {

namespace {

// A block's quantization out of line: the restrict qualifiers of its own parameters let the
// compiler vectorize its loops (table gathers), which it does not once the block is inlined
// into a kernel whose byte stores may alias anything.
const char* kQ8BlockCpu =
    "static __attribute__((noinline)) void opal_q8_block_cpu(const float* __restrict__ q, long long n, unsigned char* __restrict__ c,\n"
    "                                                        float* __restrict__ s) {\n  opal_q8_block(q, n, c, s);\n}\n";

// Staged bf16 stores (CEmitter::staged_loop), 64 values at a time. Stochastically
// (opal_st_bf16x64_sr, OPAL_STAGE_SR) on every CPU: the chunk's random bits hashed 17 at a time
// (support/half.h: opal_sr_bits, four elements' words a hash), then one vectorized loop. AdamW
// with its three stores stochastic, one thread: 0.46 ns an element against 0.65 value by value
// with AVX512-BF16, 0.46 against 0.73 with AVX-512 alone, 1.33 against 2.71 with AVX2 alone
// (no 64-bit vector multiply: a hash costs more). To nearest (opal_st_bf16x64, OPAL_STAGE_BF16)
// where the compiler targets AVX512-BF16, through its conversion, which rounds to nearest even
// as opal_to_bf16 does, bit for bit, except that it flushes subnormals to zero: a run of 32
// values holding one is rounded value by value. Without the conversion, staging stores to
// nearest gains nothing (0.39 against 0.38, 0.87 against 0.91), so a loop storing any value to
// nearest stages only with it. Both checked over every float by tests/unit/cpu_staging_test.cpp;
// -DOPAL_NO_STAGING (OPAL_CXXFLAGS) leaves every loop storing value by value.
const char* kStageBf16 = R"(#ifndef OPAL_NO_STAGING
#define OPAL_STAGE_SR 1
static inline void opal_st_bf16x64_sr(unsigned short* __restrict__ d, const float* __restrict__ x, unsigned long long k, long long e0) {
  unsigned long long h[17];
  for (int j = 0; j < 17; ++j) h[j] = opal_mix64(k ^ ((unsigned long long)e0 / 4 + j));
  unsigned short r[64];  // (a copy: the loop below does not vectorize over a pointer into h)
  memcpy(r, (const unsigned short*)h + e0 % 4, sizeof r);
  for (int i = 0; i < 64; ++i) {
    const unsigned int b = opal_f2u(x[i]);
    d[i] = x[i] != x[i] ? (unsigned short)((b >> 16) | 0x40u) : (unsigned short)((b + r[i]) >> 16);
  }
}
#if defined(__AVX512BF16__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define OPAL_STAGE_BF16 1
static inline void opal_st_bf16x64(unsigned short* __restrict__ d, const float* __restrict__ x) {
  for (int q = 0; q < 64; q += 32) {
    const __m512 a = _mm512_loadu_ps(x + q), b = _mm512_loadu_ps(x + q + 16);
    if (__builtin_expect((_mm512_fpclass_ps_mask(a, 0x20) | _mm512_fpclass_ps_mask(b, 0x20)) != 0, 0))
      for (int k = q; k < q + 32; ++k) d[k] = opal_to_bf16(x[k], 0, 0ull, 0.0, 0ll);
    else _mm512_storeu_si512((void*)(d + q), (__m512i)_mm512_cvtne2ps_pbh(b, a));
  }
}
#endif
#endif
)";

// memcpy, for bit casts, declared as the math is (exec::kCMathDeclarations): no header.
const char* kMemcpyDeclaration = "extern \"C\" void* memcpy(void*, const void*, unsigned long);\n";

class CpuEmitter final : public CEmitter {
 public:
  std::string prelude(size_t n_hparams) const override {
    return std::string(exec::kCMathDeclarations) + kMemcpyDeclaration + exec::tensor_struct_c() + exec::uniforms_struct_c(n_hparams) +
           R"(#define U_hp(k) (U->hp[k])
#define U_t (U->t)
#ifndef OPAL_CACHE_KEY
#define OPAL_CACHE_KEY ""
#endif
extern "C" const char* opal_cache_key(void) { return OPAL_CACHE_KEY; }

static inline float opal_bf16(float x) {
)" + exec::bf16_body_c("memcpy(&b, &x, 4);", "memcpy(&x, &b, 4);") +
           R"(}
)" +
           exec::half_c(
               "static inline unsigned int opal_f2u(float x) { unsigned int u; memcpy(&u, &x, 4); return u; }\n"
               "static inline float opal_u2f(unsigned int u) { float x; memcpy(&x, &u, 4); return x; }\n",
               "static inline") +
           (bf16 ? kStageBf16 : "") +
           (q8 ? exec::q8_table_c("static const", "opal_q8_tab") + exec::q8_funcs_c("static inline") + kQ8BlockCpu : std::string()) +
           R"(static inline int opal_nonfinite(float x) {
  unsigned int b;
  memcpy(&b, &x, 4);
  return (b & 0x7f800000u) == 0x7f800000u;
}

)" + randn_prelude("static inline") +
           "\n";
  }

 protected:
  std::string signature(const std::string& name) const override {
    return fmt::format("extern \"C\" void {}(const opal_tensor_t* ts, long long n, const opal_uniforms_t* U)", name);
  }
  std::string open_tensor() const override { return "  for (long long p = 0; p < n; ++p) {\n  const opal_tensor_t T = ts[p];\n"; }
  std::string close_tensor() const override { return "  }\n"; }
  std::string loop_open(const Kernel& k) const override {
    // (loop() keeps small tensors off the thread pool)
    const std::string chk = checked ? " reduction(|:opal_chk)" : "";
    std::string par = k.serial ? "" : "  #pragma omp parallel for schedule(static)" + chk + "\n";
    switch (k.domain) {
      case Domain::Left:
      case Domain::Right:
      case Domain::Small:
      case Domain::Full:
        if (!k.indexed)
          return k.serial ? "  for (long long e = 0; e < n_e; ++e) {\n"
                          : "  #pragma omp parallel for simd schedule(static)" + chk + "\n  for (long long e = 0; e < n_e; ++e) {\n";
        return par + "  for (long long i = 0; i < rows; ++i) {\n    for (long long j = 0; j < cols; ++j) {\n";
      case Domain::Rows: return "  for (long long i = 0; i < rows; ++i) {\n";
      case Domain::One: return "  for (long long e = 0; e < 1; ++e) {\n";
      case Domain::Cols: return "  for (long long j = 0; j < cols; ++j) {\n";
    }
    return {};
  }
  std::string loop_close(const Kernel& k) const override { return k.domain == Domain::Full && k.indexed ? "    }\n  }\n" : "  }\n"; }
  // A parallel loop is entered only by tensors big enough for the thread pool: a small one runs
  // the same loop (vectorized alike) without an OpenMP region, whose team set-up costs more
  // than its few elements (an `if` clause still builds a team of one).
  std::string loop(const Kernel& k, const std::string& body) const override {
    if (k.serial || k.domain == Domain::Rows || k.domain == Domain::Cols || k.domain == Domain::One) return loop_open(k) + body + loop_close(k);
    if (!k.indexed) return flat_loop(body);
    const std::string small = "  for (long long i = 0; i < rows; ++i) {\n    for (long long j = 0; j < cols; ++j) {\n";
    return fmt::format("  if (numel < 65536) {{\n{}{}{}  }} else {{\n{}{}{}  }}\n", small, body, loop_close(k), loop_open(k), body, loop_close(k));
  }
  // The elements one by one (vectorized).
  std::string flat_loop(const std::string& body) const {
    const std::string chk = checked ? " reduction(|:opal_chk)" : "";
    const std::string head = "  for (long long e = 0; e < n_e; ++e) {\n";
    return fmt::format(
        "  if (n_e < 65536) {{\n  #pragma omp simd{0}\n{1}{2}  }}\n  }} else {{\n  #pragma omp parallel for simd schedule(static){0}\n{1}{2}  }}\n  "
        "}}\n",
        chk, head, body);
  }
  // Chunks of 64 elements, each computed into `opal_h<b>` and stored by opal_st_bf16x64 (to
  // nearest) or opal_st_bf16x64_sr (stochastically, with the stream's key `opal_k<b>`, once a
  // tensor), then the last n_e % 64 one by one. The chunks are parallel as loop() is: over 65536
  // elements. Where the target does not stage them, loop()'s loop instead (the preprocessor
  // keeps one of the two: a compiler sees the body three times, not five).
  bool stages_bf16() const override { return true; }
  std::string staged_loop(const Kernel&, const std::string& body, const std::string& staged_body,
                          const std::vector<StagedStore>& staged) const override {
    const std::string chk = checked ? " reduction(|:opal_chk)" : "";
    std::string keys, chunk = "  for (long long opal_c = 0; opal_c < opal_n; opal_c += 64) {\n";
    for (const StagedStore& s : staged) {
      chunk += fmt::format("    float opal_h{}[64];\n", s.buf);
      // the stream's key, once a tensor
      if (!s.stream.empty()) keys += fmt::format("  const unsigned long long opal_k{} = opal_sr_key({}, U_t);\n", s.buf, s.stream);
    }
    chunk += "  #pragma omp simd" + chk + "\n  for (long long e = opal_c; e < opal_c + 64; ++e) {\n" + staged_body + "  }\n";
    for (const StagedStore& s : staged)
      chunk += s.stream.empty() ? fmt::format("    opal_st_bf16x64(sb{0} + opal_c, opal_h{0});\n", s.buf)
                                : fmt::format("    opal_st_bf16x64_sr(sb{0} + opal_c, opal_h{0}, opal_k{0}, T.base + opal_c);\n", s.buf);
    chunk += "  }\n";
    // stores to nearest need the hardware conversion; stochastic ones stage on every CPU
    const bool nearest = std::any_of(staged.begin(), staged.end(), [](const StagedStore& s) { return s.stream.empty(); });
    return fmt::format("#ifdef {}\n  {{\n", nearest ? "OPAL_STAGE_BF16" : "OPAL_STAGE_SR") + keys +
           "  const long long opal_n = n_e / 64 * 64;  // the elements of whole chunks\n  if (opal_n < 65536) {\n" + chunk +
           "  } else {\n  #pragma omp parallel for schedule(static)" + chk + "\n" + chunk + "  }\n  #pragma omp simd" + chk +
           "\n  for (long long e = opal_n; e < n_e; ++e) {\n" + body + "  }\n  }\n#else\n" + flat_loop(body) + "#endif\n";
  }
  std::string q8_index() const override { return "e - opal_e0"; }
  std::string q8_loop(const Kernel& k, const std::string& body, const std::vector<Q8Store>& stores) const override {
    int B = 0;
    for (const Q8Store& q : stores) B = std::max(B, q.block);
    const std::string chk = checked ? " reduction(|:opal_chk)" : "";
    std::string inner = fmt::format("  for (long long opal_blk = 0; opal_blk < opal_nb; ++opal_blk) {{\n");
    for (const Q8Store& q : stores) {
      inner += fmt::format("    float opal_q{}[{}];\n", q.codes, B);
      if (q.block == B) inner += fmt::format("    const float opal_s{0} = sb{0}[opal_blk];\n    (void)opal_s{0};\n", q.scales);
    }
    inner += fmt::format("    const long long opal_e0 = opal_blk * {0}, opal_e1 = opal_e0 + {0} < n_e ? opal_e0 + {0} : n_e;\n", B);
    inner += "  #pragma omp simd" + chk + "\n  for (long long e = opal_e0; e < opal_e1; ++e) {\n";
    if (k.indexed) inner += "    const long long i = e / cols, j = e % cols;\n";
    inner += body + "  }\n";
    for (const Q8Store& q : stores)
      inner += fmt::format(
          "    {3}for (long long opal_s = opal_e0; opal_s < opal_e1; opal_s += {0})\n"
          "      opal_q8_block_cpu(opal_q{1} + (opal_s - opal_e0), opal_e1 - opal_s < {0} ? opal_e1 - opal_s : {0}, sb{1} + opal_s, sb{2} + opal_s / "
          "{0});\n",
          q.block, q.codes, q.scales, q.guard.empty() ? "" : "if (" + q.guard + ") ");
    inner += "  }\n";
    std::string out = fmt::format("  const long long opal_nb = (n_e + {0}) / {1};  // blocks of {1}\n", B - 1, B);
    if (k.serial) return out + inner;
    return out + "  if (n_e < 65536) {\n" + inner + "  } else {\n  #pragma omp parallel for schedule(static)" + chk + "\n" + inner + "  }\n";
  }
  std::string restrict_kw() const override { return "__restrict__"; }
  std::string merge_flags() const override { return "  if (opal_chk) *T.chk |= opal_chk;\n"; }
  std::string accumulate(size_t buf, bool rows, const std::string& val) const override {
    return fmt::format("sb{}[{}] += {};", buf, rows ? "i" : "j", val);
  }
  std::string accumulate_total(const std::string& acc, const std::string&, const std::string& val) const override {
    return fmt::format("{} += (double){};", acc, val);
  }
  // serial loops: row and column sums are done; totals add to their (zeroed) buffer
  std::string finish_reductions() const override {
    std::string out;
    for (const Reduction& r : reductions_)
      if (r.op == ir::Op::Sum) out += fmt::format("  sb{0}[0] = (float)({1} + (double)sb{0}[0]);\n", r.buf, r.acc);
    return out;
  }
};

}  // namespace

std::unique_ptr<CEmitter> make_cpu_emitter() { return std::make_unique<CpuEmitter>(); }

}  // namespace opal
