// Conversions between the storage formats of parameters and gradients (f32, bf16, f16) in host
// memory, with support/half.h's rounding: the same bits the generated kernels store. A q8
// slot's codes convert as the numbers 0..255 (support/q8.h quantizes values).
#include <cstring>

#include "runtime/backend.h"
#include "support/half.h"

namespace opal {

void convert_host(void* dst, exec::DType to, const void* src, exec::DType from, size_t n, const Rounding& r) {
  using exec::DType;
  if (to == from) {
    std::memcpy(dst, src, n * exec::dtype_size(to));
    return;
  }
  auto* d16 = static_cast<unsigned short*>(dst);
  auto* d32 = static_cast<float*>(dst);
  const auto* s16 = static_cast<const unsigned short*>(src);
  const auto* s32 = static_cast<const float*>(src);
  const int sr = r.stochastic ? 1 : 0;
  auto* d8 = static_cast<unsigned char*>(dst);
  const auto* s8 = static_cast<const unsigned char*>(src);
  for (size_t i = 0; i < n; ++i) {
    const float x = from == DType::F32    ? s32[i]
                    : from == DType::BF16 ? half::opal_ld_bf16(s16[i])
                    : from == DType::F16  ? half::opal_ld_f16(s16[i])
                                          : float(s8[i]);
    if (to == DType::F32) d32[i] = x;
    else if (to == DType::Q8) d8[i] = x >= 0 && x <= 255 ? (unsigned char)x : 0;  // codes (callers check them)
    else if (to == DType::BF16) d16[i] = half::opal_to_bf16(x, sr, r.id, r.t, r.base + (long long)i);
    else d16[i] = half::opal_to_f16(x);
  }
}

}  // namespace opal
