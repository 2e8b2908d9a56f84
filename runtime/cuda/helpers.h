// The CUDA backend's own kernels (runtime/cuda/helpers.cu.inc) as the NVRTC source it compiles:
// support/half.h's conversions first, which opal_convert uses. Shared with the NVRTC test.
#pragma once
#include <string>
#include <vector>

#include "compiler/exec/kernel_abi.h"

namespace opal::cuda {

// The helper kernels, in the order helper_symbols() names them.
enum HelperKernel { kZeroMany, kToBf16Many, kRoundBf16Many, kConvert, kDiag, kArgsort, kPermute };
inline const std::vector<std::string>& helper_symbols() {
  static const std::vector<std::string> names = {"opal_zero_many", "opal_to_bf16_many", "opal_round_bf16_many", "opal_convert",
                                                 "opal_diag",      "opal_argsort",      "opal_permute"};
  return names;
}

inline std::string helpers_source() {
  static const char kHelperKernels[] =
#include "runtime/cuda/helpers.cu.inc"
      ;
  return exec::half_c(
             "__device__ static inline unsigned int opal_f2u(float x) { return __float_as_uint(x); }\n"
             "__device__ static inline float opal_u2f(unsigned int u) { return __uint_as_float(u); }\n",
             "__device__ static inline") +
         kHelperKernels;
}

// The kernels of the library calls (runtime/cuda/linalg.cu.inc), a module of their own (loaded
// at the first such call; its block-wide reductions make it cooperative on the emulator).
inline std::string linalg_source() {
  static const char kKernels[] =
#include "runtime/cuda/linalg.cu.inc"
      ;
  return kKernels;
}

}  // namespace opal::cuda
