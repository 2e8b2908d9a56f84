// Conversions between the storage formats of parameters and gradients (f32, bf16, f16) in host
// memory, with support/half.h's rounding: the same bits the generated kernels store. A q8
// slot's codes convert as the numbers 0..255 (support/q8.h quantizes values).
//
// A staged parameter (an f32 master copy, a route with library calls) goes through here twice
// a step, its gradient in and its new value out: each pair of formats is its own loop, which
// the compiler vectorizes, run on the thread pool from 65536 elements as the kernels are.
#include <cstring>

#include "runtime/backend.h"
#include "runtime/host_pool.h"
#include "support/half.h"

namespace opal {

namespace {

// out[i] = f(i) for i < n: vectorizable, and parallel where n is large (outside a forked child).
template <class F>
void each(size_t n, F f) {
  const long long m = (long long)n;
  if (m < 65536 || !host_pool_usable()) {
#pragma omp simd
    for (long long i = 0; i < m; ++i) f(i);
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (long long i = 0; i < m; ++i) f(i);
}

float load(const void* src, exec::DType from, long long i) {
  using exec::DType;
  const auto* s16 = static_cast<const unsigned short*>(src);
  return from == DType::F32    ? static_cast<const float*>(src)[i]
         : from == DType::BF16 ? half::opal_ld_bf16(s16[i])
         : from == DType::F16  ? half::opal_ld_f16(s16[i])
                               : float(static_cast<const unsigned char*>(src)[i]);
}

// into f32 from `from`
template <exec::DType From>
void to_f32(float* __restrict__ d, const void* src, size_t n) {
  each(n, [&](long long i) { d[i] = load(src, From, i); });
}

// from f32 into `to`
template <exec::DType To>
void from_f32(void* dst, const float* __restrict__ s, size_t n, const Rounding& r) {
  using exec::DType;
  auto* __restrict__ d16 = static_cast<unsigned short*>(dst);
  if constexpr (To == DType::BF16) {
    if (r.stochastic) each(n, [&](long long i) { d16[i] = half::opal_to_bf16(s[i], 1, r.id, r.t, r.base + i); });
    else each(n, [&](long long i) { d16[i] = half::opal_to_bf16(s[i], 0, 0, 0, 0); });
  } else if constexpr (To == DType::F16) {
    each(n, [&](long long i) { d16[i] = half::opal_to_f16(s[i]); });
  } else {
    auto* __restrict__ d8 = static_cast<unsigned char*>(dst);
    each(n, [&](long long i) { d8[i] = s[i] >= 0 && s[i] <= 255 ? (unsigned char)s[i] : 0; });  // codes (callers check them)
  }
}

}  // namespace

void convert_host(void* dst, exec::DType to, const void* src, exec::DType from, size_t n, const Rounding& r) {
  using exec::DType;
  if (to == from) {
    std::memcpy(dst, src, n * exec::dtype_size(to));
    return;
  }
  if (to == DType::F32) {
    auto* d = static_cast<float*>(dst);
    if (from == DType::BF16) to_f32<DType::BF16>(d, src, n);
    else if (from == DType::F16) to_f32<DType::F16>(d, src, n);
    else to_f32<DType::Q8>(d, src, n);
    return;
  }
  if (from == DType::F32) {
    const auto* s = static_cast<const float*>(src);
    if (to == DType::BF16) from_f32<DType::BF16>(dst, s, n, r);
    else if (to == DType::F16) from_f32<DType::F16>(dst, s, n, r);
    else from_f32<DType::Q8>(dst, s, n, r);
    return;
  }
  // between two formats that are not f32 (rare: a checkpoint's bf16 into f16, say): through f32
  auto* d16 = static_cast<unsigned short*>(dst);
  auto* d8 = static_cast<unsigned char*>(dst);
  for (size_t i = 0; i < n; ++i) {
    const float x = load(src, from, (long long)i);
    if (to == DType::Q8) d8[i] = x >= 0 && x <= 255 ? (unsigned char)x : 0;
    else if (to == DType::BF16) d16[i] = half::opal_to_bf16(x, r.stochastic ? 1 : 0, r.id, r.t, r.base + (long long)i);
    else d16[i] = half::opal_to_f16(x);
  }
}

}  // namespace opal
