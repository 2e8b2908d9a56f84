// The CUDA backend's own kernels (runtime/cuda/helpers.cu.inc) as the NVRTC source it compiles:
// support/half.h's conversions first, which opal_convert uses. Shared with the NVRTC test.
#pragma once
#include <string>

#include "compiler/exec/kernel_abi.h"

namespace opal::cuda {

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

}  // namespace opal::cuda
