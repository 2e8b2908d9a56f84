// CUDA target: the same kernel bodies as `extern "C" __global__` grid-stride loops, one
// blockIdx.y per tensor (so one launch updates every tensor of a route). Reductions use
// atomics into buffers the runtime zeroes. Self-contained: NVRTC needs no headers.
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
