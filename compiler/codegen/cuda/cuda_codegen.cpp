// CUDA target: the same kernel bodies as `extern "C" __global__` grid-stride loops, one
// blockIdx.y per tensor (so one launch updates every tensor of a route). Reductions use
// atomics into buffers the runtime zeroes. Self-contained: NVRTC needs no headers.
#include <algorithm>

#include <fmt/format.h>

#include "compiler/codegen/targets.h"
#include "compiler/exec/kernel_abi.h"

namespace opal {

namespace {

class CudaEmitter final : public CEmitter {
 public:
  std::string prelude(size_t n_hparams) const override {
    return exec::tensor_struct_c() + exec::uniforms_struct_c(n_hparams) + R"(#define U_hp(k) (U.hp[k])
#define U_t (U.t)
__device__ static inline float opal_bf16(float x) {
)" + exec::bf16_body_c("b = __float_as_uint(x);", "x = __uint_as_float(b);") +
           R"(}
)" +
           exec::half_c(
               "__device__ static inline unsigned int opal_f2u(float x) { return __float_as_uint(x); }\n"
               "__device__ static inline float opal_u2f(unsigned int u) { return __uint_as_float(u); }\n",
               "__device__ static inline") +
           (q8 ? exec::q8_c("__device__ const", "__device__ static inline") : std::string()) +
           R"(__device__ static inline int opal_nonfinite(float x) { return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u; }

)" + randn_prelude("__device__ static inline") +
           "\n";
  }

 protected:
  std::string signature(const std::string& name) const override {
    return fmt::format("extern \"C\" __global__ void {}(const opal_tensor_t* __restrict__ ts, opal_uniforms_t U)", name);
  }
  std::string open_tensor() const override { return "  const opal_tensor_t T = ts[blockIdx.y];\n"; }
  std::string close_tensor() const override { return ""; }
  std::string loop_open(const Kernel& k) const override {
    const char* var = k.domain == Domain::Rows ? "i" : k.domain == Domain::Cols ? "j" : "e";
    const char* bound = k.domain == Domain::Rows ? "rows" : k.domain == Domain::Cols ? "cols" : "n_e";
    std::string s = fmt::format(
        "  for (long long {0} = (long long)blockIdx.x * blockDim.x + threadIdx.x; {0} < {1}; {0} += (long long)gridDim.x * blockDim.x) {{\n", var,
        bound);
    if (k.domain == Domain::Full && k.indexed) s += "    {\n    const long long i = e / cols, j = e % cols;\n";
    return s;
  }
  std::string loop_close(const Kernel& k) const override { return k.domain == Domain::Full && k.indexed ? "    }\n  }\n" : "  }\n"; }
  // One warp per block of B elements, lane l taking elements r * 32 + l (coalesced), each
  // keeping its B / 32 values in registers; a slot's absmax and sign over each of its blocks are
  // warp shuffles (opal_q8_join is order-free: the bytes equal the CPU's).
  std::string q8_index() const override { return "opal_r"; }
  std::string q8_loop(const Kernel& k, const std::string& body, const std::vector<Q8Store>& stores) const override {
    int B = 0;
    for (const Q8Store& q : stores) B = std::max(B, q.block);
    const int R = B / 32;
    std::string s = fmt::format(
        "  const long long opal_nb = (n_e + {0}) / {1};  // blocks of {1}, a warp each\n"
        "  const int opal_lane = threadIdx.x & 31;\n"
        "  for (long long opal_blk = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; opal_blk < opal_nb;"
        " opal_blk += ((long long)gridDim.x * blockDim.x) >> 5) {{\n",
        B - 1, B);
    for (const Q8Store& q : stores) {
      s += fmt::format("    float opal_q{}[{}];\n", q.codes, R);
      if (q.block == B) s += fmt::format("    const float opal_s{0} = sb{0}[opal_blk];\n    (void)opal_s{0};\n", q.scales);
    }
    s += fmt::format("    #pragma unroll\n    for (int opal_r = 0; opal_r < {}; ++opal_r) {{\n", R);
    s += fmt::format("    const long long e = opal_blk * {} + opal_r * 32 + opal_lane;\n", B);
    for (const Q8Store& q : stores) s += fmt::format("    opal_q{}[opal_r] = 0.0f;\n", q.codes);
    s += "    if (e < n_e) {\n";
    if (k.indexed) s += "    const long long i = e / cols, j = e % cols;\n";
    s += body + "    }\n    }\n";
    for (const Q8Store& q : stores) {
      const int r = q.block / 32;                                                                   // a warp's values per block of this slot
      if (!q.guard.empty()) s += fmt::format("    if ({}) {{  // a conditional write\n", q.guard);  // uniform: the whole warp
      s += fmt::format(
          "    #pragma unroll\n"
          "    for (int opal_s = 0; opal_s < {0}; ++opal_s) {{  // sb{1}'s blocks of {2}\n"
          "      unsigned int opal_m = 0u;\n      int opal_neg = 0;\n"
          "      #pragma unroll\n"
          "      for (int opal_r = opal_s * {3}; opal_r < (opal_s + 1) * {3}; ++opal_r) {{\n"
          "        opal_m = opal_q8_join(opal_m, opal_q8_mag(opal_q{4}[opal_r]));\n        opal_neg |= opal_q{4}[opal_r] < 0.0f;\n      }}\n"
          "      for (int opal_o = 16; opal_o > 0; opal_o >>= 1) {{\n"
          "        opal_m = opal_q8_join(opal_m, __shfl_xor_sync(0xffffffffu, opal_m, opal_o));\n"
          "        opal_neg |= __shfl_xor_sync(0xffffffffu, opal_neg, opal_o);\n      }}\n"
          "      const long long opal_sb = opal_blk * {0} + opal_s;\n"
          "      const float opal_a = opal_u2f(opal_m), opal_inv = opal_q8_inv(opal_a);\n"
          "      if (opal_sb * {2} < n_e) {{\n"
          "        #pragma unroll\n"
          "        for (int opal_r = opal_s * {3}; opal_r < (opal_s + 1) * {3}; ++opal_r) {{\n"
          "          const long long opal_e = opal_blk * {5} + opal_r * 32 + opal_lane;\n"
          "          if (opal_e < n_e) sb{4}[opal_e] = opal_q8_enc(opal_q{4}[opal_r], opal_inv, opal_neg);\n        }}\n"
          "        if (opal_lane == 0) sb{6}[opal_sb] = opal_neg ? -opal_a : opal_a;\n      }}\n    }}\n",
          B / q.block, q.codes, q.block, r, q.codes, B, q.scales);
      if (!q.guard.empty()) s += "    }\n";
    }
    return s + "  }\n";
  }
  std::string restrict_kw() const override { return "__restrict__"; }
  std::string merge_flags() const override { return "  if (opal_chk) atomicOr(T.chk, opal_chk);\n"; }
  std::string accumulate(const std::string& lhs, const std::string& val) const override { return fmt::format("atomicAdd(&{}, {});", lhs, val); }
  std::string accumulate_total(const std::string& acc, const std::string&, const std::string& val) const override {
    return fmt::format("{} += (double){};", acc, val);
  }
  std::string finish_total(const std::string& acc, const std::string& buf) const override {
    return fmt::format("  atomicAdd(&{}[0], (float){});\n", buf, acc);
  }
};

}  // namespace

std::unique_ptr<CEmitter> make_cuda_emitter() { return std::make_unique<CudaEmitter>(); }

}  // namespace opal
